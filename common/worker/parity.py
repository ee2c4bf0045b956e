"""The parity job: every case's logits, one-step weights and parameter count (common.parity)."""

from __future__ import annotations

import numpy as np

from common.files import write_arrays
from common.parity import case_arch, parity_batch
from common.worker.process import impl


def run_parity_job(framework: str, cases: list[dict], out: str) -> None:
    """Every case's logits, one-step weights and parameter count into OUT.npz (common.parity)."""
    impl(framework, "train").setup(1, 0, True)
    parity = impl(framework, "parity")
    arrays: dict[str, np.ndarray] = {}
    for case in cases:
        arch, shape, classes = case_arch(case), tuple(case["input_shape"]), case["num_classes"]
        x, y = parity_batch(shape, classes, seed=case["seed"])
        outputs = parity.parity_outputs(arch, shape, classes, case["seed"], x, y,
                                        case["optimizers"], case.get("dtype", "float32"))
        arrays.update({f"{case['name']}|{k}": v for k, v in outputs.items()})
        arrays[f"{case['name']}|params"] = np.array(parity.count_model_params(arch, shape, classes))
    write_arrays(out, arrays)

