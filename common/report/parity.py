"""How closely the frameworks agree: the --check-parity table (logits and one step of every
optimizer from shared weights) and the feature agreement of two transfer backbones."""

from __future__ import annotations


import numpy as np

from common.parity import TOLERANCE
from common.transfer import (PADDING_KERAS, PADDING_TORCHVISION)


def parity_table(model: str, task: str, input_shape: tuple[int, ...], seed: int,
                 result: dict) -> str:
    """The --check-parity report: params per framework, then one row per quantity and a
    column per framework: its max abs difference from the reference (PyTorch)."""
    params = ", ".join(f"{fw} {n:,}" for fw, n in result["params"].items())
    others = result["max_abs_diff"]
    lines = [f"Parity of {model} on {task}-shaped input {tuple(input_shape)}, seed {seed}: "
             f"params {params}", "",
             f"Max abs difference from {result['reference']}; within 1e-4 unless marked (no).", "",
             "| quantity | " + " | ".join(others) + " |",
             "|---|" + "---|" * len(others)]
    names = {name for diffs in others.values() for name in diffs}
    for name in sorted(names, key=lambda n: (n != "logits", n)):
        if name == "logits":
            label = "logits (inference)"
        elif name.endswith("moving stats"):
            label = f"BatchNorm moving stats after one {name.split()[0]} step (documented gap)"
        else:
            label = f"trainable weights after one {name} step"
        cells = [f"{d[name]:.2e}" + ("" if d[name] < TOLERANCE else " (no)") for d in others.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
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


