"""Every report text of the suite, built only from result records (parent process).

- the run table (fixed columns: README "Reading the table"; with --repeats each cell is
  mean ± std) and the Keras - PyTorch difference lines with a 95% Welch interval;
- the run's report.md; the --check-parity table; the transfer-learning section;
- the sweep table and the grid tables of the hyperparameter studies.
"""

from __future__ import annotations

import collections
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from common.parity import TOLERANCE
from common.records import GridRecord, RunRecord, StudyRow
from common.transfer import (PADDING_KERAS, PADDING_TORCHVISION, TransferSpec, get_backbone,
                             is_path)

COLUMNS = (
    "framework", "model", "optimizer", "lr", "batch size", "epochs", "params",
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


def group_by_framework(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = collections.defaultdict(list)
    for r in records:
        groups[r.framework].append(r)
    return dict(groups)


def comparison_table(records: list[RunRecord]) -> pd.DataFrame:
    rows = []
    for framework, group in group_by_framework(records).items():
        first = group[0]
        opt = first.config.optimizer
        rows.append({
            "framework": framework + (f" (n={len(group)})" if len(group) > 1 else ""),
            "model": first.model,
            "optimizer": opt["name"] + (f" (m={opt['momentum']})" if "momentum" in opt else ""),
            "lr": f"{opt['lr']:g}",
            "batch size": first.config.batch_size,
            "epochs": _epochs(group),
            "params": f"{first.params:,}",
            "test accuracy": _fmt([r.test_accuracy for r in group], 4),
            "test loss": _fmt([r.test_loss for r in group], 4),
            "training s": _fmt([r.train_seconds for r in group], 1),
            "s / epoch": _fmt([steady_epoch_seconds(r) for r in group], 1),
            "first-epoch overhead s": _fmt([r.first_epoch_overhead_seconds for r in group], 2),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def markdown_table(records: list[RunRecord]) -> str:
    return markdown(comparison_table(records))


def difference_line(records: list[RunRecord], key: str, label: str, scale: float = 1.0,
                    unit: str = "") -> str | None:
    """'keras - torch' mean difference with a 95% Welch interval; None unless both frameworks ran."""
    groups = group_by_framework(records)
    if set(groups) != {"keras", "torch"}:
        return None
    a = [getattr(r, key) * scale for r in groups["keras"]]
    b = [getattr(r, key) * scale for r in groups["torch"]]
    diff = statistics.mean(a) - statistics.mean(b)
    head = f"{label}, keras - torch: {diff:+.3f}{unit}"
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
    lines = [
        difference_line(records, "test_accuracy", "test accuracy", 100.0, " pp"),
        difference_line(records, "test_loss", "test loss"),
        difference_line(records, "train_seconds", "training seconds", 1.0, " s"),
    ]
    return [line for line in lines if line]


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
        + ("" if same_split else " (WARNING: the frameworks' split hashes differ)") + ".",
        f"Initial weights: {cfg.init}; restore best validation loss: {cfg.restore_best}; "
        f"threads: {cfg.threads}; deterministic: {cfg.deterministic}.",
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
    """The --check-parity report: params per framework, then one row per quantity."""
    params = ", ".join(f"{fw} {n:,}" for fw, n in result["params"].items())
    lines = [f"Parity of {model} on {task}-shaped input {tuple(input_shape)}, seed {seed}: "
             f"params {params}", "", "| quantity | max abs difference | within 1e-4 |",
             "|---|---|---|"]
    diffs = result["max_abs_diff"]
    for name in sorted(diffs, key=lambda n: (n != "logits", n)):
        if name == "logits":
            label = "logits (inference)"
        elif name.endswith("moving stats"):
            label = f"BatchNorm moving stats after one {name.split()[0]} step (documented gap)"
        else:
            label = f"trainable weights after one {name} step"
        lines.append(f"| {label} | {diffs[name]:.2e} | "
                     f"{'yes' if diffs[name] < TOLERANCE else 'no'} |")
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

