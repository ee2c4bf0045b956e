"""Train the same CNN in Keras and PyTorch on one shared split and compare them.

    python compare.py --task cifar10 --framework both
    python compare.py report results/ --sort test_accuracy      # one table across runs

From Python (a notebook): `compare.run(task="digits", epochs=5)` takes the flags as keyword
arguments, runs exactly what the command line runs and returns the table as a DataFrame;
`compare.load("results/")` returns the table across runs that `report` prints.

The command line reads top to bottom, one module per step (all in this, the parent process):
flags (common.flags) -> the plan: every flag resolved and checked, no data read
(common.plan) -> the data loaded once and checked against the plan, devices and weights
(common.preflight) -> each framework in its own process (`python -m common.worker FRAMEWORK
JOB`, common.launch; common.runner, common.studies) -> the report from the records they wrote
(common.report) -> the table printed last. common.cli ties the steps together. Nothing is
written before every check has passed; every error is one line (`error: ...`) and a non-zero
exit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from common.cli import cli, execute, flags_to_argv, main, report_command
from common.flags import build_parser, build_report_parser
from common.launch import forwarded_output
from common.plan import config_from_args, resolve
from common.preflight import check_cv_classes
from common.records import run_records

# The entry points, and what notebooks and tests reach through compare.
__all__ = ["build_parser", "build_report_parser", "check_cv_classes", "cli", "config_from_args",
           "flags_to_argv", "load", "main", "report_command", "resolve", "run", "run_records"]


def run(task: str, **options: Any) -> pd.DataFrame | None:
    """Run what `python compare.py --task TASK --FLAG VALUE ...` runs, from Python.

    Keyword arguments mirror the flags (`framework="both", epochs=5, batch_size=64,
    no_plots=True, sweep=["lr=0.1,0.01"]`), go through the same parser and checks, and write
    the same folder. Every framework process's per-epoch lines are forwarded to sys.stdout, so
    a notebook cell shows progress. Returns the table (compare.load of the folder written; a
    --grid study: its results.csv) with the folder in `df.attrs["run_dir"]`; None for
    check_parity=True, which prints its table. A bad value or a failed run raises
    common.errors.UserError with the command line's one-line message."""
    with forwarded_output():
        folder = execute(flags_to_argv(build_parser(), {"task": task, **options}))
    if folder is None:
        return None
    if options.get("grid"):
        # Text cells as written ("None", "NA" are values here); only an empty cell is missing.
        frame = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    else:
        frame = report_command([str(folder)], echo=False)
    frame.attrs["run_dir"] = folder
    return frame


def load(*paths: str | Path, **options: Any) -> pd.DataFrame:
    """The table across runs that `python compare.py report PATH...` prints, as a DataFrame
    (numbers as numbers: a metric column holds the mean, `<metric>_std` and `n` follow where
    repeats are pooled). Keyword arguments mirror report's flags: sort="test_accuracy",
    descending=True, filter=["lr=0.01"], columns="lr,framework,test_accuracy", plot=True,
    out="table.tex". The shared configuration is in `df.attrs["shared"]`, the skipped records'
    lines in `df.attrs["skipped"]` (also printed as warnings)."""
    argv = [str(p) for p in paths] + flags_to_argv(build_report_parser(), options)
    return report_command(argv, echo=False)


if __name__ == "__main__":
    sys.exit(cli())
