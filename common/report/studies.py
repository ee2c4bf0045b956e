"""The reports of the hyperparameter studies: the sweep table and report, the grid tables
(cross-validation per point, the refitted best point) and the grid study's results.csv."""

from __future__ import annotations

import math

import pandas as pd

from common.records import GridRecord, StudyRow
from common.report.run import markdown
from common.report.values import _union, config_values


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
    """The sweep's markdown table: the swept settings (`keys`), then framework, test accuracy and
    loss, final validation loss, training seconds and status, one row per StudyRow."""
    table = [{**row.point, "framework": row.framework,
              "test accuracy": _value(row.test_accuracy, 4), "test loss": _value(row.test_loss, 4),
              "final val loss": _value(row.final_val_loss, 4),
              "training s": _value(row.train_seconds, 2), "status": row.status} for row in rows]
    return markdown(pd.DataFrame(table, columns=[*keys, *SWEEP_COLUMNS]))


def sweep_report(task: str, keys: list[str], command: str, table: str, plot: str | None) -> str:
    """The sweep's report.md: task, command, the table and, if drawn, the figure `plot` (a file name
    beside it)."""
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
    """A markdown table of each framework's best grid point: its settings, cross-validation
    accuracy, test accuracy and loss after the refit."""
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
    """The grid study's report.md: command, the best points, and each framework's table of every
    point (grid_tables)."""
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


