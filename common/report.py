"""Markdown reports built only from result records.

The comparison table has a fixed column list (README: "Reading the table"); with --repeats each
cell is mean ± std over the repeats, and a line per metric gives the Keras - PyTorch difference
with its 95% confidence interval (Welch's t interval).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict

import pandas as pd
from scipy import stats

COLUMNS = (
    "framework", "model", "optimizer", "lr", "batch size", "epochs", "params",
    "test accuracy", "test loss", "training s", "s / epoch", "first-epoch overhead s",
)


def steady_epoch_seconds(record: dict) -> float:
    """Seconds per epoch once warm: (training seconds - first-epoch overhead) / epochs run."""
    epochs = len(record["epoch_seconds"]) or 1
    return (record["train_seconds"] - record["first_epoch_overhead_seconds"]) / epochs


def _fmt(values: list[float], digits: int) -> str:
    if len(values) == 1 or any(not math.isfinite(v) for v in values):
        return "nan" if not math.isfinite(values[0]) else f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _epochs(records: list[dict]) -> str:
    planned = records[0]["config"]["epochs"]
    ran = {len(r["history"]) for r in records}
    if ran == {planned}:
        return str(planned)
    flags = "diverged" if any(r.get("diverged") for r in records) else "stopped"
    return f"{'/'.join(str(n) for n in sorted(ran))} of {planned} ({flags})"


def group_by_framework(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["framework"]].append(r)
    return dict(groups)


def comparison_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for framework, group in group_by_framework(records).items():
        first = group[0]
        opt = first["config"]["optimizer"]
        rows.append({
            "framework": framework + (f" (n={len(group)})" if len(group) > 1 else ""),
            "model": first["model"],
            "optimizer": opt["name"] + (f" (m={opt['momentum']})" if "momentum" in opt else ""),
            "lr": f"{opt['lr']:g}",
            "batch size": first["config"]["batch_size"],
            "epochs": _epochs(group),
            "params": f"{first['params']:,}",
            "test accuracy": _fmt([r["test_accuracy"] for r in group], 4),
            "test loss": _fmt([r["test_loss"] for r in group], 4),
            "training s": _fmt([r["train_seconds"] for r in group], 1),
            "s / epoch": _fmt([steady_epoch_seconds(r) for r in group], 1),
            "first-epoch overhead s": _fmt([r["first_epoch_overhead_seconds"] for r in group], 2),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def markdown_table(records: list[dict]) -> str:
    return comparison_table(records).to_markdown(index=False, disable_numparse=True)


def difference_line(records: list[dict], key: str, label: str, scale: float = 1.0,
                    unit: str = "") -> str | None:
    """'keras - torch' mean difference with a 95% Welch interval; None unless both frameworks ran."""
    groups = group_by_framework(records)
    if set(groups) != {"keras", "torch"}:
        return None
    a = [r[key] * scale for r in groups["keras"]]
    b = [r[key] * scale for r in groups["torch"]]
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


def difference_lines(records: list[dict]) -> list[str]:
    lines = [
        difference_line(records, "test_accuracy", "test accuracy", 100.0, " pp"),
        difference_line(records, "test_loss", "test loss"),
        difference_line(records, "train_seconds", "training seconds", 1.0, " s"),
    ]
    return [line for line in lines if line]


def render_report(records: list[dict], run_config: dict, command: str) -> str:
    first = records[0]
    cfg = first["config"]
    envs = {r["framework"]: r["environment"] for r in records}
    same_split = len({r["split_hash"] for r in records}) == 1
    lines = [
        f"# {first['task']}: {' vs '.join(group_by_framework(records))}",
        "",
        f"Command: `{command}`",
        "",
        markdown_table(records),
        "",
        *[f"- {line}" for line in difference_lines(records)],
        "",
        f"Data: train {first['train_size']}, validation {first['val_size']}, test "
        f"{first['test_size']}; split hash `{first['split_hash']}`"
        + ("" if same_split else " (WARNING: the frameworks' split hashes differ)") + ".",
        f"Initial weights: {cfg['init']}; restore best validation loss: {cfg['restore_best']}; "
        f"threads: {cfg['threads']}; deterministic: {cfg['deterministic']}.",
        "Timing: training seconds = training passes + per-epoch validation, excluding data "
        "loading and model building; s / epoch = (training s - first-epoch overhead) / epochs.",
        "",
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
    ]
    return "\n".join(lines)
