"""Hyperparameter studies: `--sweep` (train every configuration) and `--grid` (GridSearchCV).

Framework-free. This module parses `KEY=V1,V2,...` into typed values, builds the cartesian
product, names a study folder after its normalized arguments (so re-running the same command
with the same --out finds it and resumes), runs the study, and builds its tables, plot and report
only from the records in that folder.

- A sweep runs each (configuration, framework) through compare.py's `run_framework`, i.e. the
  ordinary `python -m {keras,torch}_impl.train JOB` process and record schema; the record file is
  named after the configuration, and a record that already exists is not run again.
- A grid runs scikit-learn's GridSearchCV once per framework, in that framework's own process
  (`python -m {keras,torch}_impl.grid JOB`), on the same StratifiedKFold folds (built here from
  the labels, passed to both as explicit index pairs) and with scoring="accuracy". Each process
  writes its full `cv_results_` as CSV and then one grid record; the record is the completion mark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from common.config import RunConfig
from common.errors import UserError
from common.loop import Callbacks
from common.metrics import score
from common.optim import OPTIMIZERS
from common.records import base_environment, write_json_atomic, write_text_atomic
from common.worker import Job, PreparedData, prepare_data

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


def _filters_from_config(cfg: dict) -> str:
    return "/".join(",".join(str(f) for f in b["filters"]) for b in cfg["arch"]["blocks"])


def _float_label(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"  # None: momentum of a non-SGD optimizer


@dataclass(frozen=True)
class Setting:
    """One sweepable training setting, named like its compare.py flag (without the dashes)."""

    parse: Callable[[str], Any]  # one typed value -> what the flag's argparse attribute holds
    read: Callable[[dict], Any]  # a record's resolved config -> the same value
    label: Callable[[Any], str] = str  # for tables, file names and plots
    numeric: bool = False  # plotted on a numeric x-axis
    log_axis: bool = False


SETTINGS: dict[str, Setting] = {
    "optimizer": Setting(_optimizer, lambda c: c["optimizer"]["name"]),
    "lr": Setting(_positive_float, lambda c: c["optimizer"]["lr"], _float_label, True, True),
    "momentum": Setting(_fraction, lambda c: c["optimizer"].get("momentum"), _float_label, True),
    "batch_size": Setting(_positive_int, lambda c: c["batch_size"], numeric=True),
    "epochs": Setting(_positive_int, lambda c: c["epochs"], numeric=True),
    "seed": Setting(_seed, lambda c: c["seed"], numeric=True),
    "train_size": Setting(_positive_int, lambda c: c["train_size"], numeric=True),
    "dropout": Setting(_fraction, lambda c: c["arch"]["dropout"], _float_label, True),
    "kernel_size": Setting(_positive_int, lambda c: c["arch"]["blocks"][0]["kernel_size"],
                           numeric=True),
    "dense": Setting(_dense, lambda c: tuple(c["arch"]["dense"]),
                     lambda v: "-".join(str(d) for d in v)),
    "filters": Setting(_filters, _filters_from_config, lambda v: v.replace(",", "-")),
    "batch_norm": Setting(_bool, lambda c: c["arch"]["blocks"][0]["batch_norm"],
                          lambda v: "on" if v else "off"),
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


def study_folder(out: str | Path, kind: str, base: RunConfig, callbacks: Callbacks,
                 study: Study, cv: int | None = None) -> Path:
    """`<out>/<kind>-<task>-<hash>`: the same arguments and --out give the same folder (resume).

    The hash covers what changes results (the resolved base config, callbacks, the study, the
    folds) but not where the data is read from, nor which frameworks run: a later
    `--framework torch` adds to, and reuses, the same study.
    """
    config = {k: v for k, v in base.to_dict().items()
              if k not in ("data_dir", "cache_dir", "download")}
    identity = {"kind": kind, "config": config, "callbacks": dataclasses.asdict(callbacks),
                "study": {k: [_exact(k, v) for v in vs] for k, vs in study.items()}, "cv": cv}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    source, _, where = base.task.partition(":")  # own data, folder:/a/b/pets -> folder-pets
    task = f"{source}-{Path(where).stem}" if where else source
    folder = Path(out) / f"{kind}-{task}-{digest.hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else "nan"


def _mean_std(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "failed"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


RunFramework = Callable[[str, Any, Path], int]  # compare.run_framework(framework, job, job_path)

# ---------------------------------------------------------------------------------------------
# Sweep: one ordinary training run per (configuration, framework), resumable.
# ---------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("framework", "test accuracy", "test loss", "final val loss", "training s",
                 "status")


def record_path(folder: Path, point: dict, framework: str) -> Path:
    return folder / f"record-{point_name(point)}-{framework}.json"


def run_sweep(folder: Path, points: list[dict], configs: list[RunConfig], frameworks: tuple,
              callbacks: Callbacks, run: RunFramework) -> list[str]:
    """Train every missing (configuration, framework); returns what failed or was interrupted.

    A record is written atomically by the worker when its run ends, so a record that exists is a
    finished run: it is skipped, never run twice, and an interrupted run leaves no record at all.
    """
    failed: list[str] = []
    todo = [(p, c, fw) for p, c in zip(points, configs) for fw in frameworks
            if not record_path(folder, p, fw).exists()]
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
            code = run(framework, job, folder / f"job-{name}-{framework}.json")
            if code != 0:
                failed.append(f"{framework} {name} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")
    return failed


def _status(record: dict) -> str:
    """diverged: a loss became NaN or inf (common.loop stopped there); at chance: no better than
    always answering the test set's most frequent class (e.g. a loss that exploded but stayed
    finite); stopped early: early stopping ended it."""
    ran, planned = len(record["history"]), record["config"]["epochs"]
    if record.get("diverged"):
        return f"diverged (epoch {ran})"
    counts = np.asarray(record["confusion_matrix"]).sum(axis=1)  # rows: true classes
    if record["test_accuracy"] <= counts.max() / counts.sum():
        return "at chance"
    if record.get("stopped_early"):
        return f"stopped early ({ran} of {planned})"
    return "ok"


def sweep_rows(folder: Path, points: list[dict], frameworks: tuple) -> list[dict]:
    """One row per configuration and framework, from the records (a missing record: 'not run')."""
    rows = []
    for point in points:
        for framework in frameworks:
            record = _read_json(record_path(folder, point, framework))
            if record is None:
                row = {k: SETTINGS[k].label(v) for k, v in point.items()}
                row.update({"framework": framework, "status": "not run"})
            else:
                history = record["history"]
                row = {k: SETTINGS[k].label(SETTINGS[k].read(record["config"])) for k in point}
                row.update({
                    "framework": record["framework"],
                    "test accuracy": record["test_accuracy"],
                    "test loss": record["test_loss"],
                    "final val loss": history[-1]["val_loss"] if history else float("nan"),
                    "training s": record["train_seconds"],
                    "status": _status(record),
                    "diverged": bool(record.get("diverged")),
                })
            rows.append(row)
    return rows


def sweep_table(rows: list[dict], keys: list[str]) -> str:
    digits = {"test accuracy": 4, "test loss": 4, "final val loss": 4, "training s": 2}
    table = [{**{k: row[k] for k in keys},
              **{c: _fmt(row.get(c), digits[c]) if c in digits else row[c]
                 for c in SWEEP_COLUMNS}} for row in rows]
    return pd.DataFrame(table, columns=[*keys, *SWEEP_COLUMNS]).to_markdown(
        index=False, disable_numparse=True)


def plot_sweep(rows: list[dict], key: str, path: Path) -> None:
    """Test accuracy and training seconds against the swept value, one line per framework."""
    import matplotlib  # noqa: PLC0415  (imported only when a plot is drawn)

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt  # noqa: PLC0415

    setting = SETTINGS[key]
    labels = list(dict.fromkeys(row[key] for row in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))

    def x_of(row: dict) -> float:
        return float(row[key]) if setting.numeric else labels.index(row[key])

    styles = iter([("o", "-"), ("s", "--"), ("^", ":")])  # distinct when the lines coincide
    for framework in dict.fromkeys(row["framework"] for row in rows):
        done = sorted((r for r in rows if r["framework"] == framework and "test accuracy" in r),
                      key=x_of)
        xs = [x_of(r) for r in done]
        marker, linestyle = next(styles)
        for ax, column in zip(axes, ("test accuracy", "training s")):
            line, = ax.plot(xs, [r[column] for r in done], marker=marker, linestyle=linestyle,
                            label=framework)
            bad = [(x, r[column]) for x, r in zip(xs, done) if r["diverged"]]
            if bad:  # diverged runs: a cross, so a chance-level point is not read as a result
                ax.plot(*zip(*bad), "x", color=line.get_color(), markersize=12,
                        label=f"{framework} diverged")
    for ax, column in zip(axes, ("test accuracy", "training seconds")):
        ax.set_xlabel(key)
        ax.set_ylabel(column)
        if setting.log_axis:
            ax.set_xscale("log")
        if not setting.numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"sweep over {key}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")  # atomic: a reader never sees half a PNG
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def sweep_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple,
                callbacks: Callbacks, run: RunFramework, command: str, plots: bool = True) -> int:
    """Run (or finish) a sweep, write report.md (+ a PNG for one key), print the table last."""
    points = product(study)
    write_json_atomic(folder / "config.json", {
        "command": command, "kind": "sweep", "frameworks": list(frameworks),
        "study": {k: [SETTINGS[k].label(v) for v in vs] for k, vs in study.items()},
        "callbacks": dataclasses.asdict(callbacks), "base_config": configs[0].to_dict()})
    failed = run_sweep(folder, points, configs, frameworks, callbacks, run)
    rows = sweep_rows(folder, points, frameworks)
    table = sweep_table(rows, list(study))
    lines = [f"# Sweep on {configs[0].task}: {', '.join(study)}", "", f"Command: `{command}`", "",
             table, ""]
    if len(study) == 1 and plots:
        key = next(iter(study))
        png = f"sweep-{key}.png"
        plot_sweep(rows, key, folder / png)
        lines += [f"![test accuracy and training seconds against {key}]({png})", "",
                  f"Plot: [{png}]({png})", ""]
    lines += [
        "Each row is one ordinary training run (its record is `record-<configuration>-"
        "<framework>.json` here). Status `diverged`: the training or validation loss became NaN "
        "or inf, and training stopped after that epoch; `at chance`: test accuracy no better "
        "than always predicting the most frequent test class. Re-running the same command with "
        "the same --out runs only the rows without a record.", ""]
    write_text_atomic(folder / "report.md", "\n".join(lines))
    missing = sum(row["status"] == "not run" for row in rows)
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

SCORING = "accuracy"


def cv_folds(y: np.ndarray, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled folds as explicit (train, test) index pairs, the same in both
    processes (GridSearchCV takes the list as `cv=`)."""
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def folds_hash(folds: list[tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for train, test in folds:
        for part in (train, test):
            digest.update(np.asarray(part, dtype="<i8").tobytes())
            digest.update(b"|")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class GridJob:
    """What compare.py hands a grid process: one resolved config per grid point."""

    keys: tuple[str, ...]  # the grid's settings, in the order given
    configs: tuple[RunConfig, ...]  # one per grid point, in product() order
    cv: int
    record_path: str
    csv_path: str

    def to_dict(self) -> dict:
        return {"keys": list(self.keys), "configs": [c.to_dict() for c in self.configs],
                "cv": self.cv, "record_path": self.record_path, "csv_path": self.csv_path}

    @classmethod
    def from_dict(cls, data: dict) -> "GridJob":
        return cls(keys=tuple(data["keys"]),
                   configs=tuple(RunConfig.from_dict(c) for c in data["configs"]),
                   cv=data["cv"], record_path=data["record_path"], csv_path=data["csv_path"])


@dataclass(frozen=True)
class GridBackend:
    """What keras_impl.grid and torch_impl.grid each provide (same names on both sides)."""

    make_estimator: Callable[[RunConfig, PreparedData], Any]  # scikeras / skorch classifier
    estimator_params: Callable[[RunConfig], dict]  # a grid point's config -> estimator params
    to_input: Callable[[np.ndarray], np.ndarray]  # prepared NHWC float32 -> the model's layout
    predict_logits: Callable[[Any, np.ndarray], np.ndarray]  # fitted estimator -> logits
    count_params: Callable[[Any], int]  # fitted estimator -> trainable parameters
    resolve_device: Callable[[str], str]  # --device -> the device the estimator trains on


def param_grid(configs: tuple[RunConfig, ...], backend: GridBackend) -> list[dict[str, list]]:
    """One single-point grid per configuration, so cv_results_ row i is grid point i.

    Only the estimator parameters that differ between points are listed; the rest stay as
    make_estimator set them, which keeps cv_results_' param columns readable.
    """
    params = [backend.estimator_params(c) for c in configs]
    varying = [k for k in params[0] if any(p[k] != params[0][k] for p in params)]
    return [{k: [p[k]] for k in varying} for p in params]


def run_grid_job(framework: str, job: GridJob, backend: GridBackend, environment: dict) -> dict:
    """GridSearchCV over the job's points; writes cv_results_ (CSV), then the grid record."""
    from sklearn.model_selection import GridSearchCV  # noqa: PLC0415

    base = job.configs[0]  # every point shares the data settings (train_size is not gridable)
    t0 = time.perf_counter()
    data = prepare_data(base)
    data_seconds = time.perf_counter() - t0
    folds = cv_folds(data.y_train, job.cv, base.split_seed)
    search = GridSearchCV(backend.make_estimator(base, data), param_grid(job.configs, backend),
                          scoring=SCORING, cv=folds, refit=True, n_jobs=1, verbose=1,
                          error_score=np.nan)
    t0 = time.perf_counter()
    search.fit(backend.to_input(data.x_train), data.y_train)
    search_seconds = time.perf_counter() - t0
    test = score(backend.predict_logits(search.best_estimator_, backend.to_input(data.x_test)),
                 data.y_test)

    labels = [{k: SETTINGS[k].label(SETTINGS[k].read(c.to_dict())) for k in job.keys}
              for c in job.configs]
    cv_results = pd.DataFrame(search.cv_results_)
    for i, key in enumerate(job.keys):  # the suite's names first, then sklearn's own columns
        cv_results.insert(i, key, [point[key] for point in labels])
    write_text_atomic(job.csv_path, cv_results.to_csv(index=False))

    res = search.cv_results_
    record = {
        "kind": "grid",
        "task": base.task,
        "framework": framework,
        "model": base.model,
        "keys": list(job.keys),
        "configs": [c.to_dict() for c in job.configs],
        "cv": job.cv,
        "scoring": SCORING,
        "folds_hash": folds_hash(folds),
        "split_hash": data.split_hash,
        "train_size": len(data.x_train),
        "test_size": len(data.x_test),
        "results": [{
            "mean_cv_accuracy": float(res["mean_test_score"][i]),
            "std_cv_accuracy": float(res["std_test_score"][i]),
            "fold_accuracies": [float(res[f"split{f}_test_score"][i]) for f in range(job.cv)],
            "mean_fit_seconds": float(res["mean_fit_time"][i]),
            "std_fit_seconds": float(res["std_fit_time"][i]),
            "rank": int(res["rank_test_score"][i]),
        } for i in range(len(job.configs))],
        "best_index": int(search.best_index_),
        "best_cv_accuracy": float(search.best_score_),
        "params": backend.count_params(search.best_estimator_),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "refit_seconds": float(search.refit_time_),
        "search_seconds": search_seconds,
        "excluded_from_timing": {"data_loading_seconds": data_seconds},
        "cv_results_csv": Path(job.csv_path).name,
        "environment": {**base_environment(base.threads, backend.resolve_device(base.device)),
                        **environment},
    }
    write_json_atomic(job.record_path, record)
    return record


def grid_worker_main(framework: str, setup: Callable[[RunConfig], dict],
                     backend: GridBackend) -> None:
    """Entry point of `python -m {keras,torch}_impl.grid JOB.json` (mirrors worker_main)."""
    try:
        job = GridJob.from_dict(json.loads(Path(sys.argv[1]).read_text()))
        environment = setup(job.configs[0])
        run_grid_job(framework, job, backend, environment)
    except UserError as err:
        print(f"error: {framework}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def grid_record_path(folder: Path, framework: str) -> Path:
    return folder / f"grid-{framework}.json"


def grid_tables(records: list[dict]) -> list[tuple[str, str]]:
    """Per framework: (title, markdown table with one row per grid point)."""
    out = []
    for rec in records:
        rows = []
        for cfg, res in zip(rec["configs"], rec["results"]):
            row = {k: SETTINGS[k].label(SETTINGS[k].read(cfg)) for k in rec["keys"]}
            row.update({
                "CV accuracy (mean ± std)": _mean_std(res["mean_cv_accuracy"],
                                                      res["std_cv_accuracy"], 4),
                "fit s (mean ± std)": _mean_std(res["mean_fit_seconds"],
                                                res["std_fit_seconds"], 2),
                "rank": str(res["rank"]),
            })
            rows.append(row)
        title = (f"{rec['framework']}: GridSearchCV, {rec['cv']}-fold CV {rec['scoring']} on "
                 f"{rec['train_size']} training examples")
        out.append((title, pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)))
    return out


def best_table(records: list[dict]) -> str:
    rows = []
    for rec in records:
        best = rec["configs"][rec["best_index"]]
        rows.append({
            "framework": rec["framework"],
            "best parameters": ", ".join(
                f"{k}={SETTINGS[k].label(SETTINGS[k].read(best))}" for k in rec["keys"]),
            "CV accuracy": _fmt(rec["best_cv_accuracy"], 4),
            "test accuracy (refit)": _fmt(rec["test_accuracy"], 4),
            "test loss (refit)": _fmt(rec["test_loss"], 4),
            "refit s": _fmt(rec["refit_seconds"], 2),
            "search s": _fmt(rec["search_seconds"], 1),
        })
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def grid_study(folder: Path, study: Study, configs: list[RunConfig], frameworks: tuple, cv: int,
               run: RunFramework, command: str) -> int:
    """Run (or finish) a grid search per framework, write report.md, print the tables last.

    The unit of resumption is one framework's whole GridSearchCV: its record is written when the
    search, the refit and the test evaluation are done.
    """
    write_json_atomic(folder / "config.json", {
        "command": command, "kind": "grid", "frameworks": list(frameworks), "cv": cv,
        "study": {k: [SETTINGS[k].label(v) for v in vs] for k, vs in study.items()},
        "base_config": configs[0].to_dict()})
    failed = []
    try:
        for framework in frameworks:
            path = grid_record_path(folder, framework)
            if path.exists():
                print(f"{framework}: grid already finished in {folder}, kept", file=sys.stderr)
                continue
            job = GridJob(keys=tuple(study), configs=tuple(configs), cv=cv,
                          record_path=str(path),
                          csv_path=str(folder / f"cv_results-{framework}.csv"))
            code = run(framework, job, folder / f"job-grid-{framework}.json")
            if code != 0:
                failed.append(f"{framework} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")

    records = [r for fw in frameworks if (r := _read_json(grid_record_path(folder, fw)))]
    if records:
        tables = grid_tables(records)
        best = best_table(records)
        same_folds = len({r["folds_hash"] for r in records}) == 1
        lines = [f"# Grid search on {records[0]['task']}: {', '.join(study)}", "",
                 f"Command: `{command}`", ""]
        for title, table in tables:
            lines += [f"## {title}", "", table, ""]
        lines += ["## Best parameters per framework (refitted on the whole training set)", "",
                  best, "",
                  "Full `cv_results_`: " + ", ".join(
                      f"[{r['cv_results_csv']}]({r['cv_results_csv']})" for r in records) + ".",
                  f"Folds: StratifiedKFold({records[0]['cv']}, shuffle, random_state=split seed), "
                  f"hash `{records[0]['folds_hash']}`"
                  + ("" if same_folds else " (WARNING: the frameworks' folds differ)") + "; "
                  f"split hash `{records[0]['split_hash']}`. Fit s: one GridSearchCV fit "
                  "(model build, compilation and training), as scikit-learn times it.", ""]
        write_text_atomic(folder / "report.md", "\n".join(lines))
        print(f"\nResults: {folder}/report.md")
        for title, table in tables:
            print(f"\n{title}\n\n{table}")
        print(f"\nBest parameters per framework (refitted on all {records[0]['train_size']} "
              f"training examples, tested on {records[0]['test_size']}):\n\n{best}")
    if failed:
        raise UserError(f"grid search incomplete ({', '.join(failed)}); re-run the same command "
                        f"to finish it; finished frameworks are kept in {folder}")
    return 0
