"""Every report text of the suite, built only from result records (parent process).

- the run table (fixed columns: README "Reading the table"; with --repeats each cell is
  mean ± std) and the Keras - PyTorch difference lines with a 95% Welch interval;
- the run's report.md; the --check-parity table; the transfer-learning section;
- the sweep table and the grid tables of the hyperparameter studies;
- the table across runs (`compare.py report`, compare.load): records flattened to named
  configuration values and metrics, pooled per run and framework, in markdown, LaTeX, CSV or
  HTML; and each invocation's results.csv (one row per record).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from common.config import RunConfig
from common.errors import UserError
from common.frameworks import reference
from common.loop import Callbacks
from common.machine import busy_text
from common.parity import TOLERANCE
from common.records import GridRecord, RunRecord, StudyRow, collect_records
from common.specs import (conv_batch_norm, conv_filters, conv_kernel, dense_dropout,
                          hidden_dense)
from common.transfer import (PADDING_KERAS, PADDING_TORCHVISION, TransferSpec, get_backbone,
                             is_path)

COLUMNS = (
    "framework", "device, mode, precision", "model", "optimizer", "lr", "batch size", "epochs", "params",
    "test accuracy", "test loss", "training s", "s / epoch", "first-epoch overhead s",
)


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, disable_numparse=True)


# ----------------------------------------------------------------------------- run table


def steady_epoch_seconds(record: RunRecord) -> float:
    """Seconds per epoch once warm: (training seconds - first-epoch overhead) / epochs run."""
    epochs = len(record.epoch_seconds) or 1
    return (record.train_seconds - record.first_epoch_overhead_seconds) / epochs


def _fmt(values: list[float], digits: int) -> str:
    if len(values) == 1 or any(not math.isfinite(v) for v in values):
        return "nan" if not math.isfinite(values[0]) else f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def planned_epochs(record: RunRecord) -> int:
    """Epochs the configuration asks for; a transfer run counts both of its phases."""
    spec = record.config.transfer
    return record.config.epochs + (spec.fine_tune_epochs if spec else 0)


def _epochs(records: list[RunRecord]) -> str:
    planned = planned_epochs(records[0])
    ran = {len(r.history) for r in records}
    if ran == {planned}:
        return str(planned)
    flags = "diverged" if any(r.diverged for r in records) else "stopped"
    return f"{'/'.join(str(n) for n in sorted(ran))} of {planned} ({flags})"


def run_setup(record: RunRecord) -> tuple[str, str, str]:
    """Where and how a run computed: the device it resolved to, its mode and precision (with
    ' (TF32)' where float32 products ran in TF32 on a GPU: `--mode fast` there)."""
    device = str(record.environment.get("device", record.config.device))
    tf32 = device == "cuda" and record.environment.get("tf32") and record.config.precision == "float32"
    return device, record.config.mode, record.config.precision + (" (TF32)" if tf32 else "")


def setup_warning(records: list[RunRecord]) -> str | None:
    """A comparison of frameworks that ran on different devices, modes or precisions times
    the setups as much as the frameworks: say so above the differences."""
    setups = {r.framework: run_setup(r) for r in records}
    if len(set(setups.values())) <= 1:
        return None
    differ = [name for i, name in enumerate(("devices", "modes", "precisions"))
              if len({s[i] for s in setups.values()}) > 1]
    return (f"WARNING: the frameworks ran on different {' and '.join(differ)} ("
            + "; ".join(f"{fw} {', '.join(s)}" for fw, s in setups.items())
            + "): the differences below are not the frameworks' alone")


def group_by_framework(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = collections.defaultdict(list)
    for r in records:
        groups[r.framework].append(r)
    return dict(groups)


def seconds_to_accuracy(record: RunRecord, target: float) -> float | None:
    """Training seconds until the validation accuracy first reached `target` (the sum of the
    epoch times up to and including that epoch: MLPerf's time-to-quality on the suite's timing
    rule), or None when no epoch reached it. A transfer run's epochs count in order."""
    elapsed = 0.0
    for entry in record.history:
        elapsed += entry["seconds"]
        if entry["val_accuracy"] >= target:
            return elapsed
    return None


def _to_accuracy(records: list[RunRecord], target: float) -> str:
    times = [seconds_to_accuracy(r, target) for r in records]
    reached = [t for t in times if t is not None]
    if not reached:
        return "not reached"
    text = _fmt(reached, 1)
    return text if len(reached) == len(times) else f"{text} ({len(reached)} of {len(times)})"


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per framework (repeats pooled as mean ± std). With --target-accuracy A (the
    records' callbacks.target_accuracy), a column of the training seconds to A validation
    accuracy (seconds_to_accuracy)."""
    target_accuracy = records[0].callbacks.target_accuracy if records else None
    rows = []
    for framework, group in group_by_framework(records).items():
        first = group[0]
        opt = first.config.optimizer
        rows.append({
            "framework": framework + (f" (n={len(group)})" if len(group) > 1 else ""),
            "device, mode, precision": ", ".join(run_setup(first)),
            "model": first.model,
            "optimizer": opt["name"] + (f" (m={opt['momentum']})" if "momentum" in opt else ""),
            "lr": f"{opt['lr']:g}",
            "batch size": first.config.batch_size,
            "epochs": _epochs(group),
            "params": f"{first.params:,}",
            "test accuracy": _fmt([r.test_accuracy for r in group], 4),
            "test loss": _fmt([r.test_loss for r in group], 4),
            "training s": _fmt([r.train_seconds for r in group], 1)
            + (" (busy)" if any(r.contention and r.contention.get("busy") for r in group) else ""),
            "s / epoch": _fmt([steady_epoch_seconds(r) for r in group], 1),
            "first-epoch overhead s": _fmt([r.first_epoch_overhead_seconds for r in group], 2),
            **({f"s to {target_accuracy:g} val. accuracy": _to_accuracy(group, target_accuracy)}
               if target_accuracy is not None else {}),
        })
    columns = list(COLUMNS) + ([f"s to {target_accuracy:g} val. accuracy"]
                               if target_accuracy is not None else [])
    return pd.DataFrame(rows, columns=columns)


def markdown_table(records: list[RunRecord]) -> str:
    """comparison_table as markdown."""
    return markdown(comparison_table(records))


def difference_line(records: list[RunRecord], key: str, label: str, scale: float = 1.0,
                    unit: str = "", framework: str | None = None) -> str | None:
    """'framework - reference' mean difference with a 95% Welch interval (the reference is
    torch when it ran, else the first framework; `framework`: the first other one by default);
    None unless both ran."""
    groups = group_by_framework(records)
    ref = reference(list(groups)) if groups else None
    framework = framework or next((f for f in groups if f != ref), None)
    if framework is None or framework not in groups or framework == ref:
        return None
    a = [getattr(r, key) * scale for r in groups[framework]]
    b = [getattr(r, key) * scale for r in groups[ref]]
    diff = statistics.mean(a) - statistics.mean(b)
    head = f"{label}, {framework} - {ref}: {diff:+.3f}{unit}"
    if len(a) < 2 or len(b) < 2:
        return head + " (run with --repeats 2 or more for a confidence interval)"
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        verdict = "significant" if diff != 0 else "not significant"
        return head + f", zero variance in both groups: {verdict}"
    test = stats.ttest_ind(a, b, equal_var=False)
    low, high = test.confidence_interval(0.95)
    verdict = "significant" if test.pvalue < 0.05 else "not significant"
    return (head + f", 95% CI [{low:+.3f}, {high:+.3f}]{unit} "
            f"(Welch t-test p={test.pvalue:.3f}: {verdict} at 5%)")


def difference_lines(records: list[RunRecord]) -> list[str]:
    """Every other framework against the reference column (torch when it ran)."""
    groups = group_by_framework(records)
    ref = reference(list(groups)) if groups else None
    busy = busy_lines(records)
    lines = [difference_line(records, key, label, scale, unit, framework)
             for framework in groups if framework != ref
             for key, label, scale, unit in (("test_accuracy", "test accuracy", 100.0, " pp"),
                                             ("test_loss", "test loss", 1.0, ""),
                                             ("train_seconds", "training seconds", 1.0, " s"))
             if not (busy and key == "train_seconds")]
    if busy:
        lines.append("training seconds: not compared, because " + "; ".join(busy)
                     + " (the time then depends on the other processes as much as on the "
                     "framework; rerun on an idle machine)")
    return [line for line in [setup_warning(records), divergence_line(records), *lines] if line]


def busy_lines(records: list[RunRecord]) -> list[str]:
    """'keras ran on a busy machine (busy: 45% of the CPU used by other processes)' per busy
    record (common.machine.Contention), in record order."""
    return [f"{r.framework}{f' (repeat {r.repeat})' if r.repeat else ''} ran on a busy machine "
            f"({busy_text(r.contention)})" for r in records if busy_text(r.contention)]


def divergence_line(records: list[RunRecord]) -> str | None:
    """When some frameworks diverged (a loss became NaN or inf) and others did not, on inputs the
    worker checked to be finite (common.worker.check_finite): name each diverged run's epoch, so
    the reader can tell a framework's numerics from a data fault. None when none or all diverged."""
    diverged = [r for r in records if r.diverged]
    if not diverged or len(diverged) == len(records):
        return None
    where = "; ".join(f"{r.framework} at epoch {len(r.history)}" for r in diverged)
    fine = sorted({r.framework for r in records if not r.diverged})
    return (f"WARNING: diverged: {where}, while {', '.join(fine)} did not, on the same inputs "
            "(every prepared input was checked to be finite): a difference of the frameworks' "
            "numerics, not of the data")


def render_report(records: list[RunRecord], run_config: dict, transfer: list[str],
                  figures: str) -> str:
    """report.md of one invocation: table, differences, data facts, environments, config."""
    first = records[0]
    cfg = first.config
    envs = {r.framework: r.environment for r in records}
    same_split = len({r.split_hash for r in records}) == 1
    lines = [
        f"# {first.task}: {' vs '.join(group_by_framework(records))}",
        "",
        f"Command: `{run_config['command']}`",
        "",
        markdown_table(records),
        "",
        *[f"- {line}" for line in difference_lines(records)],
        "",
        f"Data: train {first.train_size}, validation {first.val_size}, test "
        f"{first.test_size}; split hash `{first.split_hash}`"
        + ("" if same_split else " (WARNING: the frameworks' split hashes differ)") + "."
        + "".join(f" Note: {note}." for note in run_config.get("data_notes", [])),
        f"Initial weights: {cfg.init}; restore best validation loss: {cfg.restore_best}; "
        f"threads: {cfg.threads}; deterministic: {cfg.deterministic}; mode: {cfg.mode}; "
        f"precision: {cfg.precision}.",
        "Timing: training seconds = training passes + per-epoch validation, excluding data "
        "loading and model building; s / epoch = (training s - first-epoch overhead) / epochs.",
        "",
        *(["## Transfer learning", "", *transfer, ""] if transfer else []),
        "## Environment",
        "",
        *[f"- {fw}: " + ", ".join(f"{k} {v}" for k, v in env.items()) for fw, env in envs.items()],
        "",
        "## Configuration",
        "",
        "```json",
        json.dumps(run_config, indent=2, default=str),
        "```",
        "",
        figures,
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- parity


def parity_table(model: str, task: str, input_shape: tuple[int, ...], seed: int,
                 result: dict) -> str:
    """The --check-parity report: params per framework, then one row per quantity and a
    column per framework: its max abs difference from the reference (PyTorch)."""
    params = ", ".join(f"{fw} {n:,}" for fw, n in result["params"].items())
    others = result["max_abs_diff"]
    lines = [f"Parity of {model} on {task}-shaped input {tuple(input_shape)}, seed {seed}: "
             f"params {params}", "",
             f"Max abs difference from {result['reference']}; within 1e-4 unless marked (no).", "",
             "| quantity | " + " | ".join(others) + " |",
             "|---|" + "---|" * len(others)]
    names = {name for diffs in others.values() for name in diffs}
    for name in sorted(names, key=lambda n: (n != "logits", n)):
        if name == "logits":
            label = "logits (inference)"
        elif name.endswith("moving stats"):
            label = f"BatchNorm moving stats after one {name.split()[0]} step (documented gap)"
        else:
            label = f"trainable weights after one {name} step"
        cells = [f"{d[name]:.2e}" + ("" if d[name] < TOLERANCE else " (no)") for d in others.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- transfer


def feature_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How closely two frameworks' pooled features of the same images agree."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return {"images": int(len(a)), "cosine_min": float(cosine.min()),
            "cosine_mean": float(cosine.mean()), "max_abs_diff": float(np.abs(a - b).max()),
            "max_abs_feature": float(max(np.abs(a).max(), np.abs(b).max()))}


def _agreement_line(label: str, agreement: dict[str, float]) -> str:
    return (f"{label}: cosine min {agreement['cosine_min']:.6f} (mean "
            f"{agreement['cosine_mean']:.6f}), max abs difference {agreement['max_abs_diff']:.2e} "
            f"(largest feature {agreement['max_abs_feature']:.2f})")


def agreement_lines(keras: dict[str, np.ndarray], torch: dict[str, np.ndarray],
                    used: str) -> list[str]:
    """PyTorch's probe features vs Keras', with the padding the Keras graph used and, where it
    has them, with the other padding (markdown bullets)."""
    other = PADDING_TORCHVISION if used == PADDING_KERAS else PADDING_KERAS
    lines = []
    for key, padding in (("features", used), ("features_other_padding", other)):
        if key in keras:
            agreement = feature_agreement(keras[key], torch["features"])
            lines.append(_agreement_line(f"  - Keras padding {padding}"
                                         + (" (used)" if key == "features" else ""), agreement))
    return lines


def transfer_lines(records: list[RunRecord], run_dir: str | Path) -> list[str]:
    """The transfer-learning facts of a run, from its records and probe files (markdown lines)."""
    runs = [r for r in records if r.config.pipeline == "transfer"]
    if not runs:
        return []
    spec: TransferSpec = runs[0].config.transfer
    blocks = get_backbone(spec.backbone).blocks
    lines = [f"Transfer learning: {spec.backbone} at {spec.image_size}x{spec.image_size} px, "
             f"weights {spec.weights_label()}; the epochs column counts both phases. Training "
             "seconds include the one-off feature extraction, counted as first-epoch overhead."]
    for r in runs:
        t = r.transfer
        head, *rest = t["phases"]
        cached = ("the frozen base's features computed once "
                  f"({t['feature_extraction_seconds']:.1f} s) and the head trained on them"
                  if t["features_cached"] else "the frozen base run on every batch "
                  "(augmentation changes the inputs each epoch)")
        tail = "; no fine-tuning" if not rest else (
            f"; phase 2: top {rest[0]['blocks']} of {blocks} blocks unfrozen at lr "
            f"{rest[0]['lr']:g}, {rest[0]['trainable_params']:,} trainable parameters, "
            f"{rest[0]['epochs']} epoch(s)")
        lines.append(
            f"- {r.framework}: base from {t['weights_source']}; preprocessing: "
            f"{t['preprocessing']['description']}; padding: {t['padding']}; phase 1: {cached}, "
            f"BatchNorm in inference mode, {head['trainable_params']:,} trainable parameters"
            + tail + ".")
    if is_path(spec.weights):
        lines += _probe_lines(runs, Path(run_dir))
    else:
        lines.append("- Feature agreement between the frameworks is not measured: with "
                     f"--weights {spec.weights} their bases hold different weights.")
    return lines


def _probe_lines(runs: list[RunRecord], run_dir: Path) -> list[str]:
    by_repeat: dict[int, dict[str, RunRecord]] = collections.defaultdict(dict)
    for r in runs:
        by_repeat[r.repeat][r.framework] = r
    pair = next((p for p in by_repeat.values() if {"keras", "torch"} <= set(p)), None)
    if pair is None:
        return ["- Feature agreement: needs both frameworks in the same run."]
    try:
        keras = dict(np.load(run_dir / pair["keras"].transfer["feature_probe"]))
        torch = dict(np.load(run_dir / pair["torch"].transfer["feature_probe"]))
    except (OSError, KeyError, ValueError) as err:
        return [f"- Feature agreement: probe features unavailable ({err})."]
    return [f"- Feature agreement of the pretrained bases, Keras vs PyTorch (pooled features of "
            f"the first {len(keras['features'])} test images, before any training):",
            *agreement_lines(keras, torch, pair["keras"].transfer["padding"])]


# ----------------------------------------------------------------------------- studies


def _value(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else "nan"


def _mean_std(mean: float, std: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "failed"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


SWEEP_COLUMNS = ("framework", "test accuracy", "test loss", "final val loss", "training s",
                 "status")


def sweep_table(rows: list[StudyRow], keys: list[str]) -> str:
    table = [{**row.point, "framework": row.framework,
              "test accuracy": _value(row.test_accuracy, 4), "test loss": _value(row.test_loss, 4),
              "final val loss": _value(row.final_val_loss, 4),
              "training s": _value(row.train_seconds, 2), "status": row.status} for row in rows]
    return markdown(pd.DataFrame(table, columns=[*keys, *SWEEP_COLUMNS]))


def sweep_report(task: str, keys: list[str], command: str, table: str, plot: str | None) -> str:
    lines = [f"# Sweep on {task}: {', '.join(keys)}", "", f"Command: `{command}`", "", table, ""]
    if plot:
        lines += [f"![test accuracy and training seconds against {keys[0]}]({plot})", "",
                  f"Plot: [{plot}]({plot})", ""]
    lines += [
        "Each row is one ordinary training run (its record is `record-<configuration>-"
        "<framework>.json` here). Status `diverged`: the training or validation loss became NaN "
        "or inf, and training stopped after that epoch; `at chance`: test accuracy within two "
        "standard errors of always predicting the most frequent test class. Re-running the "
        "same command with the same --out runs only the rows without a record.", ""]
    return "\n".join(lines)


def grid_tables(records: list[GridRecord]) -> list[tuple[str, str]]:
    """Per framework: (title, markdown table with one row per grid point)."""
    out = []
    for rec in records:
        rows = [{**labels,
                 "CV accuracy (mean ± std)": _mean_std(res.mean_cv_accuracy, res.std_cv_accuracy, 4),
                 "fit s (mean ± std)": _mean_std(res.mean_fit_seconds, res.std_fit_seconds, 2),
                 "rank": str(res.rank)} for labels, res in zip(rec.labels, rec.results)]
        title = (f"{rec.framework}: GridSearchCV, {rec.cv}-fold CV {rec.scoring} on "
                 f"{rec.train_size} training examples")
        out.append((title, markdown(pd.DataFrame(rows))))
    return out


def best_table(records: list[GridRecord]) -> str:
    rows = [{
        "framework": rec.framework,
        "best parameters": ", ".join(f"{k}={v}" for k, v in rec.labels[rec.best_index].items()),
        "CV accuracy": _value(rec.best_cv_accuracy, 4),
        "test accuracy (refit)": _value(rec.test_accuracy, 4),
        "test loss (refit)": _value(rec.test_loss, 4),
        "refit s": _value(rec.refit_seconds, 2),
        "search s": _value(rec.search_seconds, 1),
    } for rec in records]
    return markdown(pd.DataFrame(rows))


def grid_report(records: list[GridRecord], keys: list[str], command: str) -> str:
    same_folds = len({r.folds_hash for r in records}) == 1
    first = records[0]
    lines = [f"# Grid search on {first.task}: {', '.join(keys)}", "", f"Command: `{command}`", ""]
    for title, table in grid_tables(records):
        lines += [f"## {title}", "", table, ""]
    lines += ["## Best parameters per framework (refitted on the whole training set)", "",
              best_table(records), "",
              "Full `cv_results_`: " + ", ".join(
                  f"[{r.cv_results_csv}]({r.cv_results_csv})" for r in records) + ".",
              f"Folds: StratifiedKFold({first.cv}, shuffle, random_state=split seed), "
              f"hash `{first.folds_hash}`"
              + ("" if same_folds else " (WARNING: the frameworks' folds differ)") + "; "
              f"split hash `{first.split_hash}`. Fit s: one GridSearchCV fit "
              "(model build, compilation and training), as scikit-learn times it.", ""]
    return "\n".join(lines)



# ----------------------------------------------------------------------------- across runs
#
# `compare.py report PATH...`, compare.load and compare.run: one table over many runs' records.
# Each record is flattened to named values: its configuration, under the names of compare.py's
# flags without the dashes (lr, batch_size, filters, dense, augment, train_size, ...; CONFIG_KEYS)
# and its metrics (METRICS). Records of one run folder whose configuration differs only in a
# repeat's seed are pooled into one row per framework (mean ± std, as in the run table). The
# columns are the configuration values that differ between the selected rows, then the metrics;
# the values every row shares are listed once, above the table.

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
    spec = cfg.transfer
    values.update(task=cfg.task, pipeline=cfg.pipeline, model=cfg.model,
                  image_size=cfg.image_size)
    if spec is None:  # the architecture as its knobs read it (common.specs); any other
        # difference between two architectures shows in `model` (a preset or a file's name)
        arch = cfg.arch
        values.update(
            filters="/".join(",".join(str(f) for f in block) for block in conv_filters(arch))
            or "none",
            kernel_size=conv_kernel(arch), batch_norm=conv_batch_norm(arch),
            dense=",".join(str(d) for d in hidden_dense(arch)) or "none",
            dropout=dense_dropout(arch))
    else:
        values.update(backbone=spec.backbone, weights=spec.weights_label(),
                      image_size=spec.image_size, fine_tune_layers=spec.fine_tune_layers,
                      fine_tune_lr=spec.fine_tune_lr, fine_tune_epochs=spec.fine_tune_epochs,
                      dropout=spec.dropout, match_padding=spec.match_padding)
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


def grid_frame(records: list[GridRecord]) -> pd.DataFrame:
    """A grid study's results.csv: one row per framework and grid point (its configuration and
    cross-validation result); the refitted best point also carries the test metrics."""
    rows = []
    for rec in records:
        for i, (cfg, res) in enumerate(zip(rec.configs, rec.results)):
            best = i == rec.best_index
            rows.append({"framework": rec.framework, "point": i, **rec.labels[i],
                         **config_values(cfg), "mean_cv_accuracy": res.mean_cv_accuracy,
                         "std_cv_accuracy": res.std_cv_accuracy,
                         "mean_fit_seconds": res.mean_fit_seconds,
                         "std_fit_seconds": res.std_fit_seconds, "rank": res.rank, "best": best,
                         "test_accuracy": rec.test_accuracy if best else None,
                         "test_loss": rec.test_loss if best else None})
    return pd.DataFrame(rows, columns=_union(rows))


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


@dataclass
class CrossRun:
    """The table across runs, before it is printed in any format."""

    # One row per run and framework; the chosen columns, numbers as numbers. Metrics are the
    # mean; when any row pools repeats, `<metric>_std` follows each and `n` (records) ends it.
    frame: pd.DataFrame
    columns: list[str]  # the chosen columns
    shared: dict[str, Any]  # configuration values equal in every row (None left out)
    differing: list[str]  # configuration keys (and run) whose values tell rows apart
    labels: list[str]  # per row: the differing values and the framework (legends, headers)
    groups: list[list[RunRecord]]  # per row: its records

    def display(self) -> pd.DataFrame:
        """The chosen columns as printed: 'mean ± std' where repeats are pooled."""
        rows = []
        for (_, row), records in zip(self.frame.iterrows(), self.groups):
            n = len(records)
            out = {}
            for key in self.columns:
                text = cell(row[key], key)
                if key in METRICS and n > 1 and math.isfinite(row[f"{key}_std"]) and (
                        METRICS[key].digits or row[f"{key}_std"]):  # counts: ± only if unequal
                    text += " ± " + cell(row[f"{key}_std"], key)
                elif key == "framework" and n > 1:
                    text += f" (n={n})"
                out[key] = text
            rows.append(out)
        return pd.DataFrame(rows, columns=self.columns)

    def shared_line(self) -> str:
        return "Same in every run: " + ", ".join(f"{k}={cell(v)}" for k, v in self.shared.items())


def _key_error(flag: str, key: str, valid: list[str]) -> UserError:
    return UserError(f"{flag}: unknown key {key!r}; valid keys: {', '.join(valid)}")


def cross_run(found: list[tuple[str, str, RunRecord]], filters: list[str] | None = None,
              sort: str | None = None, descending: bool = False,
              columns: list[str] | None = None) -> CrossRun:
    """(run, record file name, record) -> the table: pooled per run, configuration and
    framework (repeats differ only in their seed); filtered (every KEY=VALUE must match), sorted
    (default: by run folder, then record file: a sweep's configurations in turn, each
    framework's row beside the other's), and the columns chosen (default: run and the differing
    configuration keys, framework, DEFAULT_METRICS). An unknown key is one line listing the
    valid ones."""
    groups: dict[tuple, list[RunRecord]] = {}
    values: dict[tuple, dict] = {}
    for run, _, record in sorted(found, key=lambda item: item[:2]):
        config = record_values(record)
        key = (run, record.framework, json.dumps(config, sort_keys=True, default=str))
        groups.setdefault(key, []).append(record)
        values.setdefault(key, {"run": run, "framework": record.framework, **config})
    rows = []
    for key, records in groups.items():
        row = {**values[key], "n": len(records)}
        for name, metric in METRICS.items():
            numbers = [float(metric.read(r)) for r in records]
            row[name] = statistics.mean(numbers)
            row[f"{name}_std"] = statistics.stdev(numbers) if len(numbers) > 1 else math.nan
        rows.append((row, records))
    config_keys = [k for k in _union(list(values.values())) if k not in ROW_KEYS]
    valid = [*ROW_KEYS, *config_keys, *METRICS]

    def known(flag: str, key: str) -> str:
        if normalize_key(key) not in valid:
            raise _key_error(flag, key, valid)
        return normalize_key(key)

    for spec in filters or []:
        name, sep, text = spec.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--filter {spec!r}: expected KEY=VALUE, e.g. lr=0.01")
        name = known("--filter", name)
        kept = [(r, g) for r, g in rows if matches(r.get(name), text)]
        if not kept:
            seen = sorted({cell(r.get(name), name) for r, _ in rows})
            raise UserError(f"--filter {spec}: no run has it; {name} is one of: "
                            f"{', '.join(seen)}")
        rows = kept
    chosen = [known("--columns", k) for k in columns] if columns else None
    if sort:
        sort = known("--sort", sort)

        def order_key(item: tuple[dict, list]) -> tuple:
            value = item[0].get(sort)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return (2, 0.0, "")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return (0, float(value), "")
            return (1, 0.0, str(value))

        present = [i for i in rows if order_key(i)[0] < 2]
        missing = [i for i in rows if order_key(i)[0] == 2]  # empty values last, either way
        rows = sorted(present, key=order_key, reverse=descending) + missing

    differing = [k for k in ("run", *config_keys)
                 if len({json.dumps(r.get(k), default=str) for r, _ in rows}) > 1]
    first = rows[0][0]
    shared = {k: first.get(k) for k in ("run", *config_keys)
              if k not in differing and first.get(k) is not None}
    if chosen is None:
        chosen = ([k for k in differing if k == "run"] + ["framework"]
                  + [k for k in differing if k != "run"] + list(DEFAULT_METRICS))
    pooled = any(r["n"] > 1 for r, _ in rows)
    frame_columns = []
    for k in chosen:
        frame_columns.append(k)
        if pooled and k in METRICS:
            frame_columns.append(f"{k}_std")
    if pooled:
        frame_columns.append("n")
    frame = pd.DataFrame([r for r, _ in rows], columns=frame_columns)
    labels = run_labels([r for r, _ in rows], [k for k in differing if k != "run"])
    return CrossRun(frame=frame, columns=chosen, shared=shared, differing=differing,
                    labels=labels, groups=[g for _, g in rows])


def run_labels(rows: list[dict], keys: list[str]) -> list[str]:
    """Per row: 'lr=0.01 keras' from the differing configuration values; the run folder where
    those do not tell two rows apart."""
    labels = [" ".join([", ".join(f"{k}={cell(r.get(k))}" for k in keys), r["framework"]]).strip()
              for r in rows]
    if len(set(labels)) < len(labels):
        labels = [f"{r['run']} {label}" for r, label in zip(rows, labels)]
    return labels


FORMATS = ("markdown", "latex", "csv", "html")


def latex_escape(text: str) -> str:
    """LaTeX's special characters escaped (`_`, `%`, `&`, ...); ± as math."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}"}
    return "".join(special.get(ch, ch) for ch in text).replace("±", r"$\pm$")


def render_cross_run(table: CrossRun, fmt: str = "markdown", transpose: bool = False,
                     figure: str | None = None) -> str:
    """The table in one format: the shared values once above it (CSV: as constant columns at
    its end, since a CSV has no place for a line of text), then the rows; `transpose` puts the
    runs in columns and the quantities in rows. `figure`: a PNG linked below (markdown)."""
    if fmt == "csv":
        frame = table.frame.copy()
        for key, value in table.shared.items():
            if key not in frame.columns:
                frame[key] = value
        if transpose:
            frame = frame.set_axis(table.labels).T.rename_axis("quantity").reset_index()
        return frame.to_csv(index=False)
    shown = table.display()
    if transpose:
        shown = shown.set_axis(table.labels).T.rename_axis("quantity").reset_index()
    metric_columns = [c for c in shown.columns if (c in METRICS) != transpose]
    if fmt == "markdown":
        text = f"{table.shared_line()}\n\n{markdown(shown)}\n"
        if figure:
            text += f"\n![validation curves and test accuracy against training seconds]" \
                    f"({figure})\n"
        return text
    if fmt == "latex":
        if transpose:
            metric_columns = list(shown.columns[1:])
        escaped = shown.map(latex_escape).rename(columns=latex_escape)
        align = "".join("r" if c in metric_columns else "l" for c in shown.columns)
        tabular = escaped.style.hide(axis="index").to_latex(hrules=True, column_format=align)
        return f"{latex_escape(table.shared_line())}\n\n{tabular}"
    if fmt == "html":
        import html  # noqa: PLC0415

        return (f"<p>{html.escape(table.shared_line())}</p>\n"
                + shown.to_html(index=False, escape=True) + "\n")
    raise UserError(f"--format must be one of: {', '.join(FORMATS)}")
