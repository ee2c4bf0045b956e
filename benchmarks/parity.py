"""The parity proof over the whole registry: logits and one step of every optimizer from the
shared initial weights, every preset (and the batch-norm variants of the small ones), on every
installed Keras backend against PyTorch, each framework in its own process (common.launch).

    python benchmarks/parity.py                                  # about 3 minutes on 2 cores
    python benchmarks/parity.py --render benchmarks/results/parity

The test suite runs the smallest networks that exercise each layer kind, and every conv and
pool configuration (tests/test_parity.py); this runs the rest. Large presets run on a smaller input that
builds the same layers (SMALL_INPUT). The record (benchmarks/results/parity/parity.json) keeps,
per case and framework, the largest absolute difference of the logits and of the weights after
one step of each optimizer; --render prints the table, marking each figure above
common.parity.TOLERANCE.
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
from common.parity import TOLERANCE, case_to_dict, default_optimizers
from common.specs import PRESETS

OUT = ROOT / "benchmarks" / "results" / "parity"
NUM_CLASSES = 10
# The same layers on a smaller input: the VGG-block presets' dense layer holds 34M-134M weights at
# 32x32 (4x4x128 after the flatten at 8x8), and whale_cnn's three pools still halve 24x24.
SMALL_INPUT = {"vgg_block": (8, 8, 3), "vgg_block_wide": (8, 8, 3), "vgg_block_2fc": (8, 8, 3),
               "vgg_block_2fc_dropout": (8, 8, 3), "whale_cnn": (24, 24, 3)}
BN_VARIANTS = ("digits_cnn", "mnist_cnn", "cifar10_cnn")


def cases() -> list[dict]:
    """Every preset at its (or SMALL_INPUT's) size, and --batch-norm variants of BN_VARIANTS."""
    out = [case_to_dict(name, arch, SMALL_INPUT.get(name, arch.input_shape), NUM_CLASSES, 0,
                        default_optimizers()) for name, arch in PRESETS.items()]
    out += [case_to_dict(f"{name}+bn", customize(PRESETS[name], batch_norm=True),
                         PRESETS[name].input_shape, NUM_CLASSES, 1, default_optimizers())
            for name in BN_VARIANTS]
    return out


def render(folder: Path) -> str:
    """The table of `folder`/parity.json: per case and framework, the logits' and the worst
    optimizer step's max abs difference from PyTorch, '(no)' above TOLERANCE."""
    import pandas as pd

    data = json.loads((folder / "parity.json").read_text())
    rows = []
    for name, result in data["results"].items():
        for framework, diffs in result["max_abs_diff"].items():
            steps = {k: v for k, v in diffs.items() if k != "logits" and "moving" not in k}
            worst = max(steps, key=steps.get)
            rows.append({"case": name, "framework": framework,
                         "params": f"{result['params'][framework]:,}",
                         "logits": _cell(diffs["logits"]),
                         "worst one-step": f"{_cell(steps[worst])} ({worst})",
                         "steps within 1e-4": f"{sum(v < TOLERANCE for v in steps.values())} "
                                              f"of {len(steps)}"})
    head = (f"CPU: {data['cpu']}, {data['date']}; max abs difference from {REFERENCE}, float32, "
            f"one batch of 16, {data['seconds']:.0f} s for the registry")
    return head + "\n\n" + pd.DataFrame(rows).to_markdown(index=False)


def _cell(value: float) -> str:
    return f"{value:.1e}" + ("" if value < TOLERANCE else " (no)")


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
