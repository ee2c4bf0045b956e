"""The parity proof over the whole registry: logits and one step of every optimizer from the
shared initial weights, every preset (and the batch-norm variants of the small ones), on every
installed Keras backend against PyTorch, each framework in its own process (common.launch),
in float64 (the proof: relative differences, common.parity.FLOAT64_TOLERANCE, and the first
layer whose output differs) and in float32 (absolute differences, common.parity.TOLERANCE).

    python benchmarks/parity.py                                  # about 6 minutes on 2 cores
    python benchmarks/parity.py --render benchmarks/results/parity

The test suite runs the smallest networks that exercise each layer kind, and every conv and
pool configuration (tests/test_parity.py); this runs the rest. Large presets run on a smaller
input that builds the same layers (SMALL_INPUT). The record
(benchmarks/results/parity/parity.json) keeps common.executors.run_parity's result per case
('<case>' in float64, '<case> float32'); --render prints the two tables, marking each figure
above its tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.files import write_text
from common.frameworks import REFERENCE, installed, is_keras
from common.knobs import customize
from common.executors import run_parity
from common.machine import cpu_model
from common.parity import FLOAT64_TOLERANCE, TOLERANCE, case_to_dict, default_optimizers
from common.specs import layer_table
from common.specs import PRESETS

OUT = ROOT / "benchmarks" / "results" / "parity"
NUM_CLASSES = 10
# The same layers on a smaller input: the VGG-block presets' dense layer holds 34M-134M weights at
# 32x32 (4x4x128 after the flatten at 8x8), and whale_cnn's three pools still halve 24x24.
SMALL_INPUT = {"vgg_block": (8, 8, 3), "vgg_block_wide": (8, 8, 3), "vgg_block_2fc": (8, 8, 3),
               "vgg_block_2fc_dropout": (8, 8, 3), "whale_cnn": (24, 24, 3)}
BN_VARIANTS = ("digits_cnn", "mnist_cnn", "cifar10_cnn")


def cases() -> list[dict]:
    """Every preset at its (or SMALL_INPUT's) size, and --batch-norm variants of BN_VARIANTS,
    each in float64 (named as the case) and in float32 ('<case> float32')."""
    specs = [(name, arch, SMALL_INPUT.get(name, arch.input_shape), NUM_CLASSES, 0,
              default_optimizers()) for name, arch in PRESETS.items()]
    specs += [(f"{name}+bn", customize(PRESETS[name], batch_norm=True),
               PRESETS[name].input_shape, NUM_CLASSES, 1, default_optimizers())
              for name in BN_VARIANTS]
    return [case_to_dict(name if dtype == "float64" else f"{name} float32", *rest, dtype=dtype)
            for dtype in ("float64", "float32") for name, *rest in specs]


def _arch(name: str):
    base = name.removesuffix("+bn")
    return customize(PRESETS[base], batch_norm=True) if name.endswith("+bn") else PRESETS[base]


def render(folder: Path) -> str:
    """The tables of `folder`/parity.json: per case and framework, the logits' and the worst
    optimizer step's difference from PyTorch, in float64 (relative, with the first layer whose
    output differs) and in float32 (absolute), '(no)' above each tolerance."""
    import pandas as pd

    data = json.loads((folder / "parity.json").read_text())
    tables = {"float64": [], "float32": []}
    for name, result in data["results"].items():
        dtype = result.get("dtype", "float32")
        key, tolerance = (("max_rel_diff", FLOAT64_TOLERANCE) if dtype == "float64"
                          else ("max_abs_diff", TOLERANCE))
        case = name.removesuffix(" float32")
        for framework, diffs in result[key].items():
            steps = {k: v for k, v in diffs.items() if k != "logits" and "moving" not in k}
            worst = max(steps, key=steps.get)
            row = {"case": case, "framework": framework,
                   "params": f"{result['params'][framework]:,}",
                   "logits": _cell(diffs["logits"], tolerance),
                   "worst one-step": f"{_cell(steps[worst], tolerance)} ({worst})",
                   f"steps within {tolerance:.0e}":
                       f"{sum(v < tolerance for v in steps.values())} of {len(steps)}"}
            if dtype == "float64":
                first = result["first_difference"][framework]
                row["first layer that differs"] = "none" if first is None else _row(case, first)
            tables[dtype].append(row)
    head = (f"CPU: {data['cpu']}, {data['date']}; one batch of 16, {data['seconds']:.0f} s for "
            "the registry in both dtypes")
    return (head + "\n\nfloat64 (the proof): the largest difference from "
            f"{REFERENCE} over the largest logit, or over the largest change the step made to "
            "each weight array\n\n"
            + pd.DataFrame(tables["float64"]).to_markdown(index=False)
            + f"\n\nfloat32: the max abs difference from {REFERENCE}\n\n"
            + pd.DataFrame(tables["float32"]).to_markdown(index=False))


def _row(case: str, row: int) -> str:
    shape = SMALL_INPUT.get(case.removesuffix("+bn"), _arch(case).input_shape)
    layer = layer_table(_arch(case), shape, NUM_CLASSES)[row]
    return f"{row + 1} ({layer.activation or layer.kind})"


def _cell(value: float, tolerance: float) -> str:
    return f"{value:.1e}" + ("" if value < tolerance else " (no)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path)
    args = parser.parse_args()
    if args.render:
        print(render(args.render))
        return
    frameworks = (REFERENCE, *(f for f in installed() if is_keras(f)))
    start = time.perf_counter()
    results = run_parity(cases(), frameworks)
    record = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"),
              "seconds": time.perf_counter() - start, "frameworks": list(frameworks),
              "results": results}
    OUT.mkdir(parents=True, exist_ok=True)
    write_text(OUT / "parity.json", json.dumps(record, indent=1) + "\n")  # atomic
    print(render(OUT))


if __name__ == "__main__":
    main()
