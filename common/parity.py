"""Parity check: with shared initial weights, do both frameworks compute the same thing?

Each framework's `parity.parity_outputs` returns, for one fixed batch, the inference logits and,
for every optimizer, the weights after one training step (dropout off, BatchNorm in training
mode), all in Keras layout. `compare_outputs` reduces the two to max absolute differences.
Used by tests/test_parity.py and by `compare.py --check-parity` (each framework in its own
process there).
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
    rng = np.random.default_rng([seed, 7])
    x = rng.random((n, *input_shape), dtype=np.float32)
    y = rng.integers(0, num_classes, size=n).astype(np.int64)
    return x, y


def without_dropout(arch: ArchSpec) -> ArchSpec:
    """Dropout draws cannot be shared between the frameworks, so the one-step check turns it off."""
    return replace(arch, dropout=0.0, blocks=tuple(replace(b, dropout=0.0) for b in arch.blocks))


def default_optimizers() -> list[dict]:
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


# --- running the check: one process per framework ------------------------------------------
# TensorFlow and PyTorch's triton crash when loaded into one process in some orders, and the
# suite's rule is one framework per process anyway: each half runs as
# `python -m {keras,torch}_impl.parity JOB.json OUT.npz`.

def case_to_dict(name: str, arch: ArchSpec, input_shape, num_classes: int, seed: int,
                 optimizers: list[dict]) -> dict:
    from dataclasses import asdict  # noqa: PLC0415

    return {"name": name, "arch": asdict(arch), "input_shape": list(input_shape),
            "num_classes": num_classes, "seed": seed, "optimizers": optimizers}


def _case_arch(case: dict) -> ArchSpec:
    from common.config import RunConfig  # noqa: PLC0415  (reuses its ArchSpec decoding)

    return RunConfig.from_dict({"arch": case["arch"], "task": "", "model": "", "optimizer": {},
                                "epochs": 1, "batch_size": 1}).arch


def parity_worker(parity_outputs, count_params) -> None:
    """Entry point of the framework halves: compute every case of JOB into OUT.npz."""
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    cases = json.loads(open(sys.argv[1]).read())
    arrays: dict[str, np.ndarray] = {}
    for case in cases:
        arch, shape, classes = _case_arch(case), tuple(case["input_shape"]), case["num_classes"]
        x, y = parity_batch(shape, classes, seed=case["seed"])
        outputs = parity_outputs(arch, shape, classes, case["seed"], x, y, case["optimizers"])
        arrays.update({f"{case['name']}|{k}": v for k, v in outputs.items()})
        arrays[f"{case['name']}|params"] = np.array(count_params(arch, shape, classes))
    np.savez(sys.argv[2], **arrays)


def run_parity(cases: list[dict], workdir, python: str | None = None) -> dict[str, dict]:
    """Run both halves in their own processes; per case: max abs differences and both param counts."""
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    job = workdir / "parity-job.json"
    job.write_text(json.dumps(cases))
    root = Path(__file__).resolve().parent.parent
    outputs = {}
    for framework in ("keras", "torch"):
        out = workdir / f"parity-{framework}.npz"
        subprocess.run([python or sys.executable, "-m", f"{framework}_impl.parity", str(job),
                        str(out)], cwd=root, check=True)
        with np.load(out) as data:
            outputs[framework] = {k: data[k] for k in data.files}
    result = {}
    for case in cases:
        prefix = case["name"] + "|"
        halves = [{k[len(prefix):]: v for k, v in outputs[fw].items() if k.startswith(prefix)}
                  for fw in ("keras", "torch")]
        params = [int(h.pop("params")) for h in halves]
        result[case["name"]] = {"max_abs_diff": compare_outputs(*halves),
                                "params": dict(zip(("keras", "torch"), params))}
    return result
