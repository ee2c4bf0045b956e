"""Parity check: with shared initial weights, do both frameworks compute the same thing?

Each framework's `parity.parity_outputs` returns, for one fixed batch and in the case's dtype
(float32 or float64), the output of every layer-table row in inference mode (the last: the
logits) and, for every optimizer, the weights after one training step (dropout off, BatchNorm
in training mode), all in Keras layout. `compare_outputs` reduces two of them to max absolute
(or, for the float64 proof, relative) differences; `first_difference` names the first row
whose output differs.
Used by tests/test_parity.py and by `compare.py --check-parity`, each framework in its own
process (`common.executors.run_parity`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from common.optim import OPTIMIZERS, resolve_optimizer
from common.specs import ArchSpec

# Within this, two frameworks count as computing the same thing in float32 (kernels differ in
# the order of their sums; differences of 1e-6 are typical, and after one step of an adaptive
# optimizer up to 1e-4..1e-2 on realistic networks: Adam divides each gradient by about its own
# size, so float32 rounding in a gradient near zero becomes a step of up to the learning rate).
TOLERANCE = 1e-4
# The proof: in float64 the same function agrees to rounding, about 1e-15 relative (measured:
# logits 8.6e-16, one SGD step 2.4e-15 on digits_cnn with batch norm), while a semantic
# difference (a padding, a bias, an epsilon) shows as 1e-8 or far more. Relative: the largest
# difference over the largest logit, or over the largest change the step made to the weight
# array. The floor is set by optimizers that divide by |g| + eps: a gradient near zero carries
# float64 rounding (~1e-17), which Adamax and Nadam (eps 1e-7) scale by up to 1/eps relative to
# their step: 6.4e-10 measured (mnist_cnn --batch-norm, Adamax); hence 1e-9, not 1e-10.
FLOAT64_TOLERANCE = 1e-9


def parity_batch(input_shape: tuple[int, int, int], num_classes: int, n: int = 16,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch every framework runs the parity check on: `n` uniform [0, 1) float32 images
    of `input_shape` (H, W, C) and their int64 labels in [0, num_classes), from `seed`."""
    rng = np.random.default_rng([seed, 7])
    x = rng.random((n, *input_shape), dtype=np.float32)
    y = rng.integers(0, num_classes, size=n).astype(np.int64)
    return x, y


def without_dropout(arch: ArchSpec) -> ArchSpec:
    """Dropout draws cannot be shared between the frameworks, so the one-step check turns it off
    (a dropout layer has no weights: the shared initial weights stay the same)."""
    return replace(arch, layers=tuple(s for s in arch.layers
                                      if s.type not in ("dropout", "spatial_dropout")))


def default_optimizers() -> list[dict]:
    """Every registered optimizer with its default hyperparameters (common.optim.resolve_optimizer)."""
    return [resolve_optimizer(name) for name in OPTIMIZERS]


def exact_hyperparameters(hp: dict, dtype: str) -> dict:
    """`hp` with its float values as float64 NumPy scalars when `dtype` is float64: Keras'
    optimizers cast hyperparameters with ops.cast, which on TensorFlow converts a Python float
    to a float32 tensor first (Adam's one float64 step then differs by 6.7e-6 relative,
    measured); a float64 scalar stays exact. Unchanged for float32."""
    if dtype != "float64":
        return hp
    return {k: np.float64(v) if isinstance(v, float) else v for k, v in hp.items()}


def _relative(a: np.ndarray, b: np.ndarray, start: np.ndarray | None = None) -> float:
    """max |a - b| / max |b - start| (start: the weights before the step, so that the measure is
    relative to the step, not to the weights; None: 0), or max |a - b| where that is 0."""
    diff = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
    moved = b.astype(np.float64) - (0.0 if start is None else start.astype(np.float64))
    scale = float(np.max(np.abs(moved), initial=0.0))
    return diff / scale if scale > 0 else diff


def compare_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                    relative: bool = False,
                    initial: list[dict[str, np.ndarray]] | None = None) -> dict[str, float]:
    """Max |a - b| for the logits and, per optimizer, over all trainable weights after one step;
    relative: per array over max |b| for the logits, and over the reference's step (b minus
    `initial`, the shared initial weights of common.init, per layer) for the weights, so that a
    step computed another way shows at its own size, not shrunk by the weights'. The per-layer
    activations are left to first_difference.

    BatchNorm moving variances are reported apart ('<opt> moving stats'): PyTorch updates them
    with the unbiased batch variance and Keras with the biased one, a documented difference.
    Raises ValueError when the two hold different arrays.
    """
    if a.keys() != b.keys():
        raise ValueError(f"different outputs: {sorted(a.keys() ^ b.keys())}")
    result: dict[str, float] = {}
    for key in sorted(k for k in a if not k.startswith("activations/")):
        group = key.split("/")[0]
        if key.endswith(("moving_mean", "moving_variance")):
            group += " moving stats"
        parts = key.split("/")  # '<optimizer>/<layer>/<array>' or 'logits'
        start = (initial[int(parts[1])].get(parts[2])
                 if initial is not None and len(parts) == 3 else None)
        diff = (_relative(a[key], b[key], start) if relative
                else float(np.max(np.abs(a[key].astype(np.float64) - b[key]))))
        result[group] = max(result.get(group, 0.0), diff)
    return result


def first_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                     tolerance: float) -> int | None:
    """The index of the first layer-table row (common.specs.layer_table) whose inference
    output differs between `a` and `b` by `tolerance` or more, relative; None if none does.
    The layer that computes another function is that row: every row before it agrees."""
    rows = sorted(int(k.split("/")[1]) for k in a if k.startswith("activations/"))
    for row in rows:
        key = f"activations/{row}"
        if a[key].shape != b[key].shape or _relative(a[key], b[key]) >= tolerance:
            return row
    return None


# --- a parity job: one process per framework (common.worker computes each half,
# common.executors.run_parity runs both and compares them) -------------------------------------

def case_to_dict(name: str, arch: ArchSpec, input_shape, num_classes: int, seed: int,
                 optimizers: list[dict], dtype: str = "float32") -> dict:
    """One parity case as the JSON a parity job carries: the model's name, its architecture, input
    shape (H, W, C), classes, seed, the optimizers to step and the dtype ('float32' or
    'float64') every framework computes it in."""
    from dataclasses import asdict

    return {"name": name, "arch": asdict(arch), "input_shape": list(input_shape),
            "num_classes": num_classes, "seed": seed, "optimizers": optimizers, "dtype": dtype}


def case_arch(case: dict) -> ArchSpec:
    """The ArchSpec of a case_to_dict case."""
    return ArchSpec.from_dict(case["arch"])
