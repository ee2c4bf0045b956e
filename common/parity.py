"""Parity check: with shared initial weights, do both frameworks compute the same thing?

Each framework's `parity.parity_outputs` returns, for one fixed batch, the inference logits and,
for every optimizer, the weights after one training step (dropout off, BatchNorm in training
mode), all in Keras layout. `compare_outputs` reduces the two to max absolute differences.
Used by tests/test_parity.py and by `compare.py --check-parity`, each framework in its own
process (`common.executors.run_parity`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from common.optim import OPTIMIZERS, resolve_optimizer
from common.specs import ArchSpec

# Within this, two frameworks count as computing the same thing (float32 kernels differ in the
# order of their sums; differences of 1e-6 are typical).
TOLERANCE = 1e-4


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


def compare_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Max |a - b| for the logits and, per optimizer, over all trainable weights after one step.

    BatchNorm moving variances are reported apart ('<opt> moving stats'): PyTorch updates them
    with the unbiased batch variance and Keras with the biased one, a documented difference.
    """
    if a.keys() != b.keys():
        raise ValueError(f"different outputs: {sorted(a.keys() ^ b.keys())}")
    result: dict[str, float] = {}
    for key in sorted(a):
        group = key.split("/")[0]
        if key.endswith(("moving_mean", "moving_variance")):
            group += " moving stats"
        diff = float(np.max(np.abs(a[key].astype(np.float64) - b[key])))
        result[group] = max(result.get(group, 0.0), diff)
    return result


# --- a parity job: one process per framework (common.worker computes each half,
# common.executors.run_parity runs both and compares them) -------------------------------------

def case_to_dict(name: str, arch: ArchSpec, input_shape, num_classes: int, seed: int,
                 optimizers: list[dict]) -> dict:
    """One parity case as the JSON a parity job carries: the model's name, its architecture, input
    shape (H, W, C), classes, seed and the optimizers to step."""
    from dataclasses import asdict

    return {"name": name, "arch": asdict(arch), "input_shape": list(input_shape),
            "num_classes": num_classes, "seed": seed, "optimizers": optimizers}


def case_arch(case: dict) -> ArchSpec:
    """The ArchSpec of a case_to_dict case."""
    return ArchSpec.from_dict(case["arch"])
