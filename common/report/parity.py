"""How closely the frameworks agree: the --check-parity table (logits and one step of every
optimizer from shared weights) and the feature agreement of two transfer backbones."""

from __future__ import annotations


import numpy as np

from common.parity import FLOAT64_TOLERANCE, TOLERANCE
from common.specs import Layer
from common.transfer import (PADDING_KERAS, PADDING_TORCHVISION)


# Where Keras 3.15 computes part of a float64 run in float32 (measured; each is rounding, not
# another function): there the float64 column shows float32-sized differences and the float32
# table is the check (tests/test_parity.py: FLOAT32_ONLY, FLOAT64_EXCLUDED).
FLOAT32_INSIDE_KERAS = ("Keras 3.15 computes parts of a float64 run in float32: batch norm on "
                        "keras-jax and keras-torch, and dense layers on keras-torch (it promotes "
                        "float64 with float32 to float32 on every backend but TensorFlow); "
                        "Nadam's constant 0.96 and LeakyReLU's slope on keras (TensorFlow). "
                        "Where these show, the float32 table is the check")
FLOAT32_NOTE = ("float32 kernels sum in other orders, so values differ in their last bits; "
                "one step of an adaptive optimizer turns such rounding in a gradient near zero "
                "into a step of up to the learning rate (Adam divides each gradient by about "
                "its own size), so float32 steps can differ by 1e-4..1e-2 on realistic networks "
                "without any layer computing another function: the proof is the float64 table")


def _rows(diffs: dict[str, dict[str, float]], tolerance: float) -> list[str]:
    """Markdown rows: one per quantity, a cell per framework (marked (no) beyond tolerance)."""
    lines = []
    names = {name for d in diffs.values() for name in d}
    for name in sorted(names, key=lambda n: (n != "logits", n)):
        if name == "logits":
            label = "logits (inference)"
        elif name.endswith("moving stats"):
            label = f"BatchNorm moving stats after one {name.split()[0]} step (documented gap)"
        else:
            label = f"trainable weights after one {name} step"
        gap = name.endswith("moving stats")
        cells = [f"{d[name]:.2e}" + ("" if gap or d[name] < tolerance else " (no)")
                 for d in diffs.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def parity_table(model: str, task: str, input_shape: tuple[int, ...], seed: int,
                 float64: dict, float32: dict, layers: list[Layer]) -> str:
    """The --check-parity report: params per framework; the proof, in float64 (relative
    differences from the reference, PyTorch, within FLOAT64_TOLERANCE, and for a framework
    that differs the first layer-table row of `layers` whose activations differ); then the
    float32 differences, as information. `float64`, `float32`: common.executors.run_parity
    results of the two cases."""
    params = ", ".join(f"{fw} {n:,}" for fw, n in float64["params"].items())
    frameworks = list(float64["max_rel_diff"])
    header = ["| quantity | " + " | ".join(frameworks) + " |", "|---|" + "---|" * len(frameworks)]
    lines = [f"Parity of {model} on {task}-shaped input {tuple(input_shape)}, seed {seed}: "
             f"params {params}", "",
             f"The proof, in float64 in every framework: the largest difference from "
             f"{float64['reference']} over the largest logit, or over the largest change the "
             f"step made to that weight array; within {FLOAT64_TOLERANCE:.0e} unless marked "
             "(no).", "", *header,
             *_rows(float64["max_rel_diff"], FLOAT64_TOLERANCE), ""]
    for fw, row in float64["first_difference"].items():
        if row is None:
            lines.append(f"{fw}: every layer's output agrees within {FLOAT64_TOLERANCE:.0e}.")
        else:
            layer = layers[row]
            lines.append(f"{fw}: the first layer whose output differs is layer-table row "
                         f"{row + 1} ({layer.kind}, output {'x'.join(map(str, layer.out_shape))})"
                         "; every row before it agrees.")
    beyond = any(v >= FLOAT64_TOLERANCE for diffs in float64["max_rel_diff"].values()
                 for name, v in diffs.items() if not name.endswith("moving stats"))
    if beyond or any(row is not None for row in float64["first_difference"].values()):
        lines += ["", FLOAT32_INSIDE_KERAS + "."]
    lines += ["", f"In float32, for information: the max abs difference from "
                  f"{float32['reference']} ({FLOAT32_NOTE}).", "", *header,
              *_rows(float32["max_abs_diff"], TOLERANCE)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- transfer


def feature_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How closely two frameworks' pooled features of the same images agree."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return {"images": int(len(a)), "cosine_min": float(cosine.min()),
            "cosine_mean": float(cosine.mean()), "max_abs_diff": float(np.abs(a - b).max()),
            "max_abs_feature": float(max(np.abs(a).max(), np.abs(b).max()))}


def _agreement_line(label: str, agreement: dict[str, float]) -> str:
    return (f"{label}: cosine min {agreement['cosine_min']:.6f} (mean "
            f"{agreement['cosine_mean']:.6f}), max abs difference {agreement['max_abs_diff']:.2e} "
            f"(largest feature {agreement['max_abs_feature']:.2f})")


def agreement_lines(keras: dict[str, np.ndarray], torch: dict[str, np.ndarray],
                    used: str) -> list[str]:
    """PyTorch's probe features vs Keras', with the padding the Keras graph used and, where it
    has them, with the other padding (markdown bullets)."""
    other = PADDING_TORCHVISION if used == PADDING_KERAS else PADDING_KERAS
    lines = []
    for key, padding in (("features", used), ("features_other_padding", other)):
        if key in keras:
            agreement = feature_agreement(keras[key], torch["features"])
            lines.append(_agreement_line(f"  - Keras padding {padding}"
                                         + (" (used)" if key == "features" else ""), agreement))
    return lines


