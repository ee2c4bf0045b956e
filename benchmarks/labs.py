"""The published lab tables as runnable configurations: each lab's own command, run here at full
size in both frameworks, its records kept under benchmarks/results/labs/LAB/, its table rendered
by `compare.py report` beside the figures the lab reported.

    python benchmarks/labs.py list
    python benchmarks/labs.py run LAB --data-dir DIR [--threads 1]
    python benchmarks/labs.py --render LAB

A lab's command is what its notebook or write-up did (the network, optimizer, batch size,
epochs, split, augmentation, and whether the best validation epoch was restored); nothing is
tuned towards the published number. Runs take long (tutorial-lr about 30 minutes on 2 cores,
vgg-block-3 about an hour): `run` resumes an interrupted sweep (the study folder is named after
the arguments). Accuracies on the suite's JPEG copy of CIFAR-10 may sit up to about 1 pp below
those on the original images.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "labs"


@dataclass(frozen=True)
class Lab:
    """A lab's configuration: compare.py's arguments, what the lab reported, and where from."""

    description: str
    args: tuple[str, ...]
    reported: str
    columns: str = "framework,lr,batch_size,epochs,test_accuracy,train_accuracy,val_accuracy"


LABS = {
    "tutorial-lr": Lab(
        "The PyTorch-tutorial lab's learning-rate study: conv 18 (3x3 same), 2x2 max-pool, dense "
        "64 (the tutorial_cnn preset), Adam, batch 32, 10 epochs, 40,000 / 10,000 train / "
        "validation; the lab evaluates the last epoch's weights (Keras' model.fit default).",
        ("--task", "cifar10", "--model", "tutorial_cnn", "--optimizer", "adam",
         "--batch-size", "32", "--epochs", "10", "--val-size", "10000", "--no-restore-best",
         "--sweep", "lr=0.1,0.001,0.0004,0.0001", "--framework", "both", "--no-plots"),
        "test accuracy 10% at lr 0.1, 64.11% at 0.001, 66.42% at 0.0004, 62.52% at 0.0001"),
    "vgg-block-3": Lab(
        "The VGG-block lab's configuration #3: conv64-conv128 (3x3 same), 2x2 max-pool, dense "
        "1024 (the vgg_block preset), Adam (the lab suggests it; it does not state one), lr "
        "1e-4, batch 32, 4 epochs, trained on 80% of the training set (40,000 / 10,000); the "
        "last epoch's weights.",
        ("--task", "cifar10", "--model", "vgg_block", "--optimizer", "adam", "--lr", "0.0001",
         "--batch-size", "32", "--epochs", "4", "--val-size", "10000", "--no-restore-best",
         "--framework", "both", "--no-plots"),
        "test accuracy 69.20% (its #1 63.57%, lr 1e-3 batch 32 10 epochs; #2 67.93%, lr 1e-3 "
        "batch 256 4 epochs)"),
    "cifar10-bfloat16": Lab(
        "The suite's CIFAR-10 lab command (cifar10_cnn, SGD lr 0.01 momentum 0.9, batch 64, 20 "
        "epochs, 45,000 / 5,000, the best validation epoch's weights) in mixed bfloat16 "
        "(Keras' mixed_bfloat16 policy; torch.autocast to bfloat16), reference mode: what "
        "bfloat16 costs in accuracy against the same command in float32.",
        ("--task", "cifar10", "--precision", "mixed_bfloat16", "--framework", "both",
         "--no-plots"),
        "the same command in float32 (2026-11-24, 2-core AMD EPYC; its records were not kept): "
        "test accuracy 0.7643 (Keras), 0.7660 (PyTorch), best epochs 9 and 8",
        columns="framework,precision,best_epoch,test_accuracy,test_loss,train_seconds"),
}


def run(name: str, extra: list[str]) -> int:
    """Run a lab into benchmarks/results/labs/NAME (resuming a sweep); the exit status."""
    lab = LABS[name]
    command = [sys.executable, str(ROOT / "compare.py"), *lab.args, *extra,
               "--out", str(OUT / name)]
    return subprocess.call(command, cwd=ROOT)


def render(name: str) -> str:
    """The lab's description and reported figures, then `compare.py report` on its records."""
    lab = LABS[name]
    table = subprocess.run([sys.executable, str(ROOT / "compare.py"), "report", str(OUT / name),
                            "--columns", lab.columns, "--sort", "lr"],
                           cwd=ROOT, capture_output=True, text=True)
    if table.returncode != 0:
        raise SystemExit(table.stderr.strip().splitlines()[-1])
    return f"{lab.description}\nThe lab reported: {lab.reported}.\n\n{table.stdout.rstrip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", metavar="LAB", choices=LABS, help="print a lab's table")
    parser.add_argument("action", nargs="?", choices=("list", "run"))
    parser.add_argument("lab", nargs="?", choices=LABS)
    args, extra = parser.parse_known_args()
    if args.render:
        print(render(args.render))
    elif args.action == "run" and args.lab:
        sys.exit(run(args.lab, extra))
    else:
        for name, lab in LABS.items():
            print(f"{name}: {lab.description}\n  reported: {lab.reported}")


if __name__ == "__main__":
    main()
