"""Hyperparameter studies: `--sweep` (train every configuration) and `--grid` (GridSearchCV).

Parent process, framework-free. This module parses `KEY=V1,V2,...` into typed values, builds the
cartesian product, names a study folder after its normalized arguments (so re-running the same
command with the same --out finds it and resumes), runs the study through common.launch, and
builds its tables (common.report), plot (common.figures) and report only from the records in
that folder.

- A sweep runs each (configuration, framework) as an ordinary training job and record; the
  record file is named after the configuration, and a record that already exists is not run
  again (a corrupt one is set aside and its run repeated).
- A grid runs scikit-learn's GridSearchCV once per framework, in that framework's own process
  (common.worker.run_grid_job), on the same StratifiedKFold folds and with scoring="accuracy".
  Each process writes its full `cv_results_` as CSV and then one grid record; the record is the
  completion mark.

Both write `results.csv` beside their report.md (common.report: a sweep one row per record, a
grid one row per framework and grid point), for pandas or a spreadsheet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.config import RunConfig
from common.errors import UserError
from common.figures import plot_sweep
from common.launch import run_worker
from common.loop import Callbacks
from common.optim import OPTIMIZERS
from common.records import (RecordError, RunRecord, StudyRow, read_grid_record,
                            read_record, write_json, write_text)
from common.report import (best_table, grid_frame, grid_report, grid_tables, results_csv,
                           sweep_report, sweep_table)
from common.specs import (conv_batch_norm, conv_filters, conv_kernel, dense_dropout,
                          hidden_dense)
from common.tasks import task_slug
from common.worker import GridJob, Job

# ---------------------------------------------------------------------------------------------
# Sweepable settings: how a value is typed, what compare.py's flag holds, how to read it back
# from a record's config (tables are built from records), and how to print it.
# ---------------------------------------------------------------------------------------------


def _number(text: str, kind: type, ok: Callable[[Any], bool], rule: str) -> Any:
    """`kind(text)` if it converts and passes `ok`; else ValueError('must be ...')."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"must be {rule}") from None
    if not ok(value):
        raise ValueError(f"must be {rule}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def _fraction(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _seed(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def _optimizer(text: str) -> str:
    if text not in OPTIMIZERS:
        raise ValueError(f"must be one of {', '.join(OPTIMIZERS)}")
    return text


def _bool(text: str) -> bool:
    words = {"true": True, "on": True, "yes": True, "1": True,
             "false": False, "off": False, "no": False, "0": False}
    if text.lower() not in words:
        raise ValueError("must be true or false")
    return words[text.lower()]


# Inside one value, '-' stands where the flag itself takes ',' (',' separates the values).
def _dense(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(v) for v in text.split("-"))


def _filters(text: str) -> str:
    """'16-32/64' -> '16,32/64', the form --filters takes (config_from_args parses it)."""
    for block in text.split("/"):
        for f in block.split("-"):
            _positive_int(f)
    return text.replace("-", ",")


def _float_label(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"  # None: momentum of a non-SGD optimizer


@dataclass(frozen=True)
class Setting:
    """One sweepable training setting, named like its compare.py flag (without the dashes)."""

    parse: Callable[[str], Any]  # one typed value -> what the flag's argparse attribute holds
    read: Callable[[RunConfig], Any]  # a record's resolved config -> the same value
    label: Callable[[Any], str] = str  # for tables, file names and plots
    numeric: bool = False  # plotted on a numeric x-axis
    log_axis: bool = False


SETTINGS: dict[str, Setting] = {
    "optimizer": Setting(_optimizer, lambda c: c.optimizer["name"]),
    "lr": Setting(_positive_float, lambda c: c.optimizer["lr"], _float_label, True, True),
    "momentum": Setting(_fraction, lambda c: c.optimizer.get("momentum"), _float_label, True),
    "batch_size": Setting(_positive_int, lambda c: c.batch_size, numeric=True),
    "epochs": Setting(_positive_int, lambda c: c.epochs, numeric=True),
    "seed": Setting(_seed, lambda c: c.seed, numeric=True),
    "train_size": Setting(_positive_int, lambda c: c.train_size, numeric=True),
    # the model knobs, read back through common.specs' view of the layer list
    "dropout": Setting(_fraction, lambda c: dense_dropout(c.arch), _float_label, True),
    "kernel_size": Setting(_positive_int, lambda c: conv_kernel(c.arch), numeric=True),
    "dense": Setting(_dense, lambda c: hidden_dense(c.arch), lambda v: "-".join(str(d) for d in v)),
    "filters": Setting(_filters, lambda c: "/".join(",".join(str(f) for f in group)
                                                    for group in conv_filters(c.arch)),
                       lambda v: v.replace(",", "-")),
    "batch_norm": Setting(_bool, lambda c: conv_batch_norm(c.arch), lambda v: "on" if v else "off"),
}
# GridSearchCV cross-validates every grid point on the same data: the training set size is a
# property of the data, not of the estimator, so only a sweep may vary it.
GRID_KEYS = tuple(k for k in SETTINGS if k != "train_size")
SWEEP_KEYS = tuple(SETTINGS)

Study = dict[str, tuple]  # setting -> its values, in the order given


def parse_study(specs: list[str], kind: str) -> Study:
    """['lr=0.1,0.01', 'batch_size=32,64'] -> {'lr': (0.1, 0.01), 'batch_size': (32, 64)}."""
    valid = GRID_KEYS if kind == "grid" else SWEEP_KEYS
    hint = f"valid keys: {', '.join(valid)}"
    study: Study = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")  # --sweep batch-size=... reads like the flag
        if not sep or not key or not values:
            raise UserError(f"--{kind} {spec!r}: expected KEY=V1,V2,... ({hint})")
        if key not in valid:
            extra = (" (a grid cross-validates on fixed data; use --sweep)"
                     if key in SETTINGS else "")
            raise UserError(f"--{kind}: unknown key {key!r}{extra}; {hint}")
        if key in study:
            raise UserError(f"--{kind}: {key} is given twice; list all its values once ({hint})")
        parsed = []
        for text in values.split(","):
            try:
                value = SETTINGS[key].parse(text.strip())
            except ValueError as err:
                raise UserError(f"--{kind} {key}: {text.strip()!r}: {err} ({hint})") from None
            if value in parsed:
                raise UserError(f"--{kind} {key}: {text.strip()!r} is listed twice ({hint})")
            parsed.append(value)
        study[key] = tuple(parsed)
    return study


def product(study: Study) -> list[dict[str, Any]]:
    """Every combination, the first key varying slowest (the order of the table's rows)."""
    keys = list(study)
    return [dict(zip(keys, values)) for values in itertools.product(*study.values())]


def _exact(key: str, value: Any) -> str:
    """A value as a file-name-safe string that tells any two distinct values apart (floats by
    repr: 0.1 and 0.1000001 print alike with %g)."""
    text = repr(value) if isinstance(value, float) else SETTINGS[key].label(value)
    return "".join(ch if ch.isalnum() or ch in ".+-" else "." for ch in text)


def point_name(point: dict[str, Any]) -> str:
    """File-name-safe and unique per configuration: 'lr-0.01_batch_size-64'."""
    return "_".join(f"{key}-{_exact(key, value)}" for key, value in point.items()) or "base"


def labels(keys, config: RunConfig) -> dict[str, str]:
    """A configuration's values of the study's settings, as the tables print them."""
    return {k: SETTINGS[k].label(SETTINGS[k].read(config)) for k in keys}


def study_folder(out: str | Path, kind: str, base: RunConfig, callbacks: Callbacks,
                 study: Study, cv: int | None = None) -> Path:
    """`<out>/<kind>-<task>-<hash>`: the same arguments and --out give the same folder (resume).

    The hash covers what changes results (the resolved base config, callbacks, the study, the
    folds) but not where the data is read from, nor which frameworks run: a later
    `--framework torch` adds to, and reuses, the same study. The folder is not created here.
    """
    config = {k: v for k, v in base.to_dict().items()
              if k not in ("data_dir", "cache_dir", "download")}
    watched = {k: v for k, v in dataclasses.asdict(callbacks).items()
               if k != "target_accuracy"}  # observes only: the same runs, the same folder
    identity = {"kind": kind, "config": config, "callbacks": watched,
                "study": {k: [_exact(k, v) for v in vs] for k, vs in study.items()}, "cv": cv}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    return Path(out) / f"{kind}-{task_slug(base.task)}-{digest.hexdigest()[:10]}"


def set_aside(path: Path, err: RecordError) -> None:
    """Move an unreadable record out of the way (kept, renamed `*.corrupt`) and say so."""
    target = path.with_name(path.name + ".corrupt")
    path.replace(target)
    print(f"warning: {err}; set aside as {target.name}, its run will be repeated",
          file=sys.stderr, flush=True)


def finished(path: Path, read: Callable[[Path], Any] = read_record) -> Any:
    """The record at `path` if it is a finished run (None if absent); a corrupt or truncated
    file is set aside, so its run is repeated."""
    if not path.exists():
        return None
    try:
        return read(path)
    except RecordError as err:
        set_aside(path, err)
        return None


# ---------------------------------------------------------------------------------------------
# Sweep: one ordinary training run per (configuration, framework), resumable.
# ---------------------------------------------------------------------------------------------


def record_path(folder: Path, point: dict, framework: str) -> Path:
    return folder / f"record-{point_name(point)}-{framework}.json"


def run_sweep(folder: Path, points: list[dict], configs: list[RunConfig], frameworks: tuple,
              callbacks: Callbacks) -> list[str]:
    """Train every missing (configuration, framework); returns what failed or was interrupted.

    A record is written atomically by the worker when its run ends, so a readable record is a
    finished run: it is skipped, never run twice, and an interrupted run leaves no record at all.
    """
    failed: list[str] = []
    todo = [(p, c, fw) for p, c in zip(points, configs) for fw in frameworks
            if finished(record_path(folder, p, fw)) is None]
    done = len(points) * len(frameworks) - len(todo)
    if done:
        print(f"Resuming {folder}: {done} finished run(s) kept, {len(todo)} to go",
              file=sys.stderr, flush=True)
    try:
        for n, (point, cfg, framework) in enumerate(todo, 1):
            name = point_name(point)
            print(f"[{n}/{len(todo)}] {framework} {name}", file=sys.stderr, flush=True)
            job = Job(config=cfg, record_path=str(record_path(folder, point, framework)),
                      callbacks=callbacks)
            code = run_worker(framework, job.to_dict(), folder / f"job-{name}-{framework}.json")
            if code == 130:  # the framework process was interrupted: so is the study
                raise KeyboardInterrupt
            if code != 0:
                failed.append(f"{framework} {name} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")
    return failed


def chance_level(record: RunRecord) -> float:
    """Accuracy of always answering the test set's most frequent class, plus two standard
    errors of an accuracy at that level on this many test images: below it, a run has learned
    nothing that sampling noise could not explain."""
    counts = np.asarray(record.confusion_matrix).sum(axis=1)  # rows: true classes
    p, n = counts.max() / counts.sum(), counts.sum()
    return float(p + 2 * math.sqrt(p * (1 - p) / n))


def status(record: RunRecord) -> str:
    """diverged: a loss became NaN or inf (common.loop stopped there); at chance: within noise
    of always answering the most frequent class (e.g. a loss that exploded but stayed finite);
    stopped early: early stopping ended it."""
    ran, planned = len(record.history), record.config.epochs
    if record.diverged:
        return f"diverged (epoch {ran})"
    if record.test_accuracy <= chance_level(record):
        return "at chance"
    if record.stopped_early:
        return f"stopped early ({ran} of {planned})"
    return "ok"


def sweep_rows(folder: Path, points: list[dict], frameworks: tuple) -> list[StudyRow]:
    """One row per configuration and framework, from the records (a missing record: 'not run')."""
    rows = []
    for point in points:
        for framework in frameworks:
            record = finished(record_path(folder, point, framework))
            if record is None:
                rows.append(StudyRow(point={k: SETTINGS[k].label(v) for k, v in point.items()},
                                     framework=framework, status="not run"))
                continue
            rows.append(StudyRow(
                point=labels(point, record.config), framework=record.framework,
                status=status(record), test_accuracy=record.test_accuracy,
                test_loss=record.test_loss,
                final_val_loss=record.history[-1]["val_loss"] if record.history else math.nan,
                train_seconds=record.train_seconds, diverged=record.diverged))
    return rows


def study_config(command: str, kind: str, frameworks: tuple, study: Study,
                 base: RunConfig, **extra: Any) -> dict:
    return {"command": command, "kind": kind, "frameworks": list(frameworks),
            "study": {k: [SETTINGS[k].label(v) for v in vs] for k, vs in study.items()},
            **extra, "base_config": base.to_dict()}


def sweep_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple,
                callbacks: Callbacks, command: str, plots: bool = True) -> int:
    """Run (or finish) a sweep, write report.md (+ a PNG for one key), print the table last."""
    points = product(study)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", study_config(
        command, "sweep", frameworks, study, configs[0],
        callbacks=dataclasses.asdict(callbacks)))
    failed = run_sweep(folder, points, configs, frameworks, callbacks)
    rows = sweep_rows(folder, points, frameworks)
    keys = list(study)
    table = sweep_table(rows, keys)
    plot = None
    if len(study) == 1 and plots:
        plot = f"sweep-{keys[0]}.png"
        setting = SETTINGS[keys[0]]
        plot_sweep(rows, keys[0], setting.numeric, setting.log_axis, folder / plot)
    write_text(folder / "report.md", sweep_report(configs[0].task, keys, command, table, plot))
    write_text(folder / "results.csv", results_csv(folder))  # one row per record, for pandas
    missing = sum(row.status == "not run" for row in rows)
    print(f"\nResults: {folder}/report.md\n")
    print(table)
    if failed or missing:
        raise UserError(f"sweep incomplete ({', '.join(failed) or f'{missing} missing'}): "
                        f"{missing} of {len(rows)} runs have no record; re-run the same command "
                        "to finish them")
    return 0


# ---------------------------------------------------------------------------------------------
# Grid: GridSearchCV in each framework's process, same folds, same scoring.
# ---------------------------------------------------------------------------------------------


def grid_record_path(folder: Path, framework: str) -> Path:
    return folder / f"grid-{framework}.json"


def grid_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple, cv: int,
               command: str) -> int:
    """Run (or finish) a grid search per framework, write report.md, print the tables last.

    The unit of resumption is one framework's whole GridSearchCV: its record is written when the
    search, the refit and the test evaluation are done.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", study_config(command, "grid", frameworks, study,
                                                    configs[0], cv=cv))
    keys = list(study)
    failed = []
    try:
        for framework in frameworks:
            path = grid_record_path(folder, framework)
            if finished(path, read_grid_record) is not None:
                print(f"{framework}: grid already finished in {folder}, kept", file=sys.stderr)
                continue
            job = GridJob(keys=tuple(keys), labels=tuple(labels(keys, c) for c in configs),
                          configs=tuple(configs), cv=cv, record_path=str(path),
                          csv_path=str(folder / f"cv_results-{framework}.csv"))
            code = run_worker(framework, job.to_dict(), folder / f"job-grid-{framework}.json")
            if code == 130:
                raise KeyboardInterrupt
            if code != 0:
                failed.append(f"{framework} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")

    records = [r for fw in frameworks
               if (r := finished(grid_record_path(folder, fw), read_grid_record))]
    if records:
        write_text(folder / "report.md", grid_report(records, keys, command))
        write_text(folder / "results.csv", grid_frame(records).to_csv(index=False))
        print(f"\nResults: {folder}/report.md")
        for title, table in grid_tables(records):
            print(f"\n{title}\n\n{table}")
        print(f"\nBest parameters per framework (refitted on all {records[0].train_size} "
              f"training examples, tested on {records[0].test_size}):\n\n{best_table(records)}")
    if failed:
        raise UserError(f"grid search incomplete ({', '.join(failed)}); re-run the same command "
                        f"to finish it; finished frameworks are kept in {folder}")
    return 0
