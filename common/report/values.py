"""Records flattened to named values: the configuration under the names of compare.py's flags
(CONFIG_KEYS), the metrics (METRICS), how a value prints (`cell`) and matches a --filter, and
each invocation's results.csv (one row per record).

`compare.py report PATH...`, compare.load and compare.run: one table over many runs' records.
Each record is flattened to named values: its configuration, under the names of compare.py's
flags without the dashes (lr, batch_size, filters, dense, augment, train_size, ...; CONFIG_KEYS)
and its metrics (METRICS). Records of one run folder whose configuration differs only in a
repeat's seed are pooled into one row per framework (mean ± std, as in the run table). The
columns are the configuration values that differ between the selected rows, then the metrics;
the values every row shares are listed once, above the table."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from common.config import Callbacks, RunConfig
from common.records import RunRecord, collect_records
from common.knobs import conv_batch_norm, conv_filters, conv_kernel, dense_dropout, hidden_dense
from common.report.run import seconds_to_accuracy, steady_epoch_seconds


# Where the data is read from, not what is trained: never a column.
NOT_COLUMNS = ("data_dir", "cache_dir", "image_dir", "download")

# The configuration keys, in column order (a transfer run has no conv `filters`, a CNN no
# `backbone`: theirs are empty). Settings added to RunConfig or an optimizer later appear after
# these, under their own names.
CONFIG_KEYS = (
    "task", "pipeline", "model", "backbone", "weights", "filters", "kernel_size", "batch_norm",
    "dense", "dropout", "image_size",
    "fine_tune_layers", "fine_tune_lr", "fine_tune_epochs", "match_padding", "optimizer", "lr",
    "momentum", "batch_size", "epochs", "early_stopping", "reduce_lr_on_plateau", "min_delta",
    "restore_best", "init", "augment", "seed", "split_seed", "train_size", "val_size",
    "test_size", "device", "mode", "precision", "threads", "deterministic",
)


@dataclass(frozen=True)
class Metric:
    """How a metric column reads a record, and its printed decimals."""
    read: Callable[[RunRecord], float]
    digits: int  # decimals in the printed table


METRICS: dict[str, Metric] = {
    "train_accuracy": Metric(lambda r: r.train_accuracy, 4),
    "val_accuracy": Metric(lambda r: r.val_accuracy, 4),
    "test_accuracy": Metric(lambda r: r.test_accuracy, 4),
    "train_loss": Metric(lambda r: r.train_loss, 4),
    "val_loss": Metric(lambda r: r.val_loss, 4),
    "test_loss": Metric(lambda r: r.test_loss, 4),
    "train_seconds": Metric(lambda r: r.train_seconds, 1),
    "seconds_per_epoch": Metric(steady_epoch_seconds, 2),
    "first_epoch_overhead_seconds": Metric(lambda r: r.first_epoch_overhead_seconds, 2),
    "epochs_run": Metric(lambda r: len(r.history), 0),
    "best_epoch": Metric(lambda r: r.best_epoch, 0),
    "params": Metric(lambda r: r.params, 0),
    # --target-accuracy A: training seconds to A validation accuracy (nan: not reached or no A)
    "seconds_to_target": Metric(lambda r: _or_nan(
        seconds_to_accuracy(r, r.callbacks.target_accuracy)
        if r.callbacks.target_accuracy is not None else None), 1),
    "inference_ms_per_image": Metric(lambda r: _or_nan(
        1000 * r.inference["seconds_per_image"] if r.inference else None), 3),
    "latency_ms": Metric(lambda r: _or_nan(
        1000 * r.inference["batch1_median_seconds"]
        if r.inference and r.inference.get("batch1_median_seconds") is not None else None), 2),
}
# Test metrics first: a DataFrame printed in an 80-column terminal keeps its first columns.
DEFAULT_METRICS = ("test_accuracy", "test_loss", "train_seconds", "seconds_per_epoch",
                   "train_accuracy", "val_accuracy")
ROW_KEYS = ("run", "framework")  # what a row is: a run folder's configuration, per framework


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _scalar(value: Any) -> Any:
    """A table cell: numbers, strings, booleans and None as they are; sequences joined."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(_scalar(v)) for v in value)
    return json.dumps(value, sort_keys=True, default=str)


def config_values(cfg: RunConfig, callbacks: Callbacks | None = None) -> dict[str, Any]:
    """A resolved configuration as named scalar values (CONFIG_KEYS first, then any setting
    added since, under its own name)."""
    values: dict[str, Any] = dict.fromkeys(CONFIG_KEYS)
    transfer = cfg.transfer
    values.update(task=cfg.task, pipeline=cfg.pipeline, model=cfg.model,
                  image_size=cfg.image_size)
    if transfer is None:  # the architecture as its knobs read it (common.specs); any other
        # difference between two architectures shows in `model` (a preset or a file's name)
        arch = cfg.arch
        values.update(
            filters="/".join(",".join(str(f) for f in block) for block in conv_filters(arch))
            or "none",
            kernel_size=conv_kernel(arch), batch_norm=conv_batch_norm(arch),
            dense=",".join(str(d) for d in hidden_dense(arch)) or "none",
            dropout=dense_dropout(arch))
    else:
        values.update(backbone=transfer.backbone, weights=transfer.weights_label(),
                      image_size=transfer.image_size, fine_tune_layers=transfer.fine_tune_layers,
                      fine_tune_lr=transfer.fine_tune_lr, fine_tune_epochs=transfer.fine_tune_epochs,
                      dropout=transfer.dropout, match_padding=transfer.match_padding)
    opt = cfg.optimizer
    values.update(optimizer=opt["name"], lr=opt["lr"], momentum=opt.get("momentum"))
    values.update({k: _scalar(v) for k, v in opt.items() if k not in ("name", "lr", "momentum")})
    values.update(batch_size=cfg.batch_size, epochs=cfg.epochs, restore_best=cfg.restore_best,
                  init=cfg.init, augment=",".join(cfg.augment) or "none", seed=cfg.seed,
                  split_seed=cfg.split_seed, train_size=cfg.train_size, val_size=cfg.val_size,
                  device=cfg.device, mode=cfg.mode, precision=cfg.precision, threads=cfg.threads,
                  deterministic=cfg.deterministic)
    if callbacks is not None:
        values.update(early_stopping=callbacks.early_stopping, min_delta=callbacks.min_delta,
                      restore_best=callbacks.restore_best,
                      reduce_lr_on_plateau=(",".join(f"{v:g}" for v in callbacks.reduce_lr)
                                            if callbacks.reduce_lr else None))
    handled = {"task", "model", "arch", "optimizer", "transfer", "pipeline", *values,
               *NOT_COLUMNS}
    for f in dataclasses.fields(RunConfig):
        if f.name not in handled:
            values[f.name] = _scalar(getattr(cfg, f.name))
    return values


def record_values(record: RunRecord) -> dict[str, Any]:
    """A record's configuration with what the run itself resolved: the model's full name, the
    split sizes it trained on, the device it ran on, and the base seed of its repeats."""
    values = config_values(record.config, record.callbacks)
    values.update(model=record.model, train_size=record.train_size, val_size=record.val_size,
                  test_size=record.test_size, seed=record.seed - record.repeat,
                  device=record.environment.get("device", record.config.device))
    return values


def records_frame(found: list[tuple[str, str, RunRecord]]) -> pd.DataFrame:
    """One row per record: (run, record file, record) -> run, record, framework, repeat, the
    flattened configuration, every metric, diverged and stopped_early. results.csv."""
    rows = []
    for run, name, r in found:
        rows.append({"run": run, "record": name, "framework": r.framework, "repeat": r.repeat,
                     **record_values(r), **{k: m.read(r) for k, m in METRICS.items()},
                     "diverged": r.diverged, "stopped_early": r.stopped_early})
    return pd.DataFrame(rows, columns=_union(rows))


def results_csv(folder: Path) -> str:
    """results.csv of a run or sweep folder: one row per record in it (records_frame)."""
    found, _ = collect_records([folder])
    return records_frame([(folder.name, f.path.name, f.record) for f in found]).to_csv(index=False)


def _union(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def cell(value: Any, key: str = "") -> str:
    """How a value prints: metrics with their fixed decimals, other floats as %g, None '-'."""
    if hasattr(value, "item"):  # numpy scalars from a DataFrame
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value) and key not in METRICS):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in METRICS and isinstance(value, (int, float)):
        if not math.isfinite(value):
            return "nan"
        digits = METRICS[key].digits
        return f"{value:,.0f}" if key == "params" else f"{value:.{digits}f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def normalize_key(key: str) -> str:
    """'batch-size', 'batch size' and 'batch_size' name the same column."""
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def matches(value: Any, text: str) -> bool:
    """--filter KEY=VALUE: numbers compare as numbers (lr=1e-2 matches 0.01), booleans accept
    yes/no/true/false/on/off, '-' or none an empty value; everything else as printed."""
    text = text.strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return text.lower() in ("-", "none", "null", "")
    if isinstance(value, bool):
        words = {"true": True, "yes": True, "on": True, "1": True,
                 "false": False, "no": False, "off": False, "0": False}
        return words.get(text.lower()) is value
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(text), float(value), rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return str(value) == text or cell(value) == text


