"""Hyperparameter studies: `--sweep` (train every configuration) and `--grid` (GridSearchCV).

Parent process, framework-free. What a study varies and its points are common.study_settings';
this module names a study folder after its normalized arguments (so re-running the same command
with the same --out finds it and resumes), runs the study through common.executors.run_jobs, and
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
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from common.config import Callbacks, RunConfig
from common.errors import UserError
from common.figures import plot_sweep
from common.executors import run_jobs
from common.launch import LOCAL, Executor, WorkerJob
from common.errors import RecordError
from common.files import write_json, write_text
from common.jobs import GridJob, Job
from common.records import RunRecord, StudyRow, read_grid_record, read_record
from common.report.run import check_comparable
from common.report.studies import (best_table, grid_frame, grid_report, grid_tables, sweep_report,
                                   sweep_table)
from common.report.values import results_csv
from common.study_settings import SETTINGS, Study, _exact, labels, point_name, product
from common.tasks import task_slug

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
    """Where a sweep point's run record for `framework` goes: <folder>/record-<point>-<framework>.json."""
    return folder / f"record-{point_name(point)}-{framework}.json"


def run_sweep(folder: Path, points: list[dict], configs: list[RunConfig], frameworks: tuple,
              callbacks: Callbacks, executor: Executor = LOCAL) -> list[str]:
    """Train every missing (configuration, framework); returns what failed or was interrupted.

    A record is written atomically by the worker when its run ends, so a readable record is a
    finished run: it is skipped, never run twice, and an interrupted run leaves no record at all.
    """
    todo = [(p, c, fw) for p, c in zip(points, configs) for fw in frameworks
            if finished(record_path(folder, p, fw)) is None]
    done = len(points) * len(frameworks) - len(todo)
    if done:
        print(f"Resuming {folder}: {done} finished run(s) kept, {len(todo)} to go",
              file=sys.stderr, flush=True)

    def jobs() -> Iterator[WorkerJob]:
        for n, (point, cfg, framework) in enumerate(todo, 1):
            name = point_name(point)
            if executor.kind == "local":  # Ray's progress bar counts the jobs instead
                print(f"[{n}/{len(todo)}] {framework} {name}", file=sys.stderr, flush=True)
            job = Job(config=cfg, record_path=str(record_path(folder, point, framework)),
                      callbacks=callbacks)
            yield (framework, f"{framework} {name}", job.to_dict(),
                   folder / f"job-{name}-{framework}.json")

    return run_jobs(jobs(), executor)


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
    """The study's config.json: command, kind, frameworks, the studied values (labels), the base
    configuration and any `extra` entries."""
    return {"command": command, "kind": kind, "frameworks": list(frameworks),
            "study": {k: [SETTINGS[k].label(v) for v in vs] for k, vs in study.items()},
            **extra, "base_config": base.to_dict()}


def sweep_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple,
                callbacks: Callbacks, command: str, plots: bool = True,
                executor: Executor = LOCAL) -> int:
    """Run (or finish) a sweep, write report.md (+ a PNG for one key), print the table last."""
    points = product(study)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", study_config(
        command, "sweep", frameworks, study, configs[0],
        callbacks=dataclasses.asdict(callbacks)))
    failed = run_sweep(folder, points, configs, frameworks, callbacks, executor)
    for point in points:  # the frameworks of one point: the same split and initial weights
        check_comparable([r for fw in frameworks
                          if (r := finished(record_path(folder, point, fw))) is not None],
                         resume=True)
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
    """Where a grid study's record for `framework` goes: <folder>/grid-<framework>.json."""
    return folder / f"grid-{framework}.json"


def grid_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple, cv: int,
               command: str, executor: Executor = LOCAL) -> int:
    """Run (or finish) a grid search per framework, write report.md, print the tables last.

    The unit of resumption is one framework's whole GridSearchCV: its record is written when the
    search, the refit and the test evaluation are done.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", study_config(command, "grid", frameworks, study,
                                                    configs[0], cv=cv))
    keys = list(study)

    def jobs() -> Iterator[WorkerJob]:
        for framework in frameworks:
            path = grid_record_path(folder, framework)
            if finished(path, read_grid_record) is not None:
                print(f"{framework}: grid already finished in {folder}, kept", file=sys.stderr)
                continue
            job = GridJob(keys=tuple(keys), labels=tuple(labels(keys, c) for c in configs),
                          configs=tuple(configs), cv=cv, record_path=str(path),
                          csv_path=str(folder / f"cv_results-{framework}.csv"))
            yield framework, framework, job.to_dict(), folder / f"job-grid-{framework}.json"

    failed = run_jobs(jobs(), executor)

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
