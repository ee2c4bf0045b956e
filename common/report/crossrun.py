"""The table across runs (`compare.py report PATH...`, compare.load): records pooled per run and
framework, filtered, sorted, with the differing configuration values as columns (`cross_run`)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd

from common.errors import UserError
from common.records import RunRecord
from common.report.values import (DEFAULT_METRICS, METRICS, ROW_KEYS, _union, cell, matches,
                                  normalize_key, record_values)


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
        """The line above the table: the configuration values every row shares."""
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
            if any(math.isnan(v) for v in numbers):  # a metric some records lack (older ones)
                row[name] = row[f"{name}_std"] = math.nan
                continue
            row[name] = statistics.mean(numbers)
            row[f"{name}_std"] = statistics.stdev(numbers) if len(numbers) > 1 else math.nan
        rows.append((row, records))
    config_keys = [k for k in _union(list(values.values())) if k not in ROW_KEYS]
    valid = [*ROW_KEYS, *config_keys, *METRICS]

    def known(flag: str, key: str) -> str:
        if normalize_key(key) not in valid:
            raise _key_error(flag, key, valid)
        return normalize_key(key)

    for given in filters or []:
        name, sep, text = given.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--filter {given!r}: expected KEY=VALUE, e.g. lr=0.01")
        name = known("--filter", name)
        kept = [(r, g) for r, g in rows if matches(r.get(name), text)]
        if not kept:
            seen = sorted({cell(r.get(name), name) for r, _ in rows})
            raise UserError(f"--filter {given}: no run has it; {name} is one of: "
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


