"""The report of one comparison run, from its records: the run table (fixed columns: README
"Reading the table"; with --repeats each cell is mean ± std), the Keras - PyTorch difference
lines with a 95% Welch interval, the busy-machine and divergence lines, and report.md."""

from __future__ import annotations

import collections
import json
import math
import statistics

import pandas as pd

from common.errors import UserError
from common.frameworks import reference
from common.machine import busy_text
from common.records import RunRecord


COLUMNS = (
    "framework", "device, mode, precision", "model", "optimizer", "lr", "batch size", "epochs", "params",
    "test accuracy", "test loss", "training s", "s / epoch", "first-epoch overhead s",
)


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table, cells as they are (no number reformatting)."""
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
    transfer = record.config.transfer
    return record.config.epochs + (transfer.fine_tune_epochs if transfer else 0)


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


def placement_lines(records: list[RunRecord]) -> list[str]:
    """Why the training seconds of these records are not comparable although each machine was
    idle: they trained on different kinds of CPU (environment cpu_model; a device difference is
    setup_warning's) or beside different numbers of other jobs of this suite
    (contention.other_jobs: the Ray executor places several on one node). One line per
    reason; [] when they ran alike."""
    def cpu(r: RunRecord) -> str:
        return str(r.environment.get("cpu_model", "?"))

    def other_jobs(r: RunRecord) -> int | None:
        return (r.contention or {}).get("other_jobs")

    lines = []
    if len({cpu(r) for r in records}) > 1:
        lines.append("the frameworks trained on different kinds of CPU ("
                     + "; ".join(f"{r.framework} on {r.environment.get('node', '?')}: {cpu(r)}"
                                 for r in records) + ")")
    if len({other_jobs(r) for r in records}) > 1:
        lines.append("the frameworks trained beside different numbers of other jobs ("
                     + "; ".join(f"{r.framework} {other_jobs(r)}" for r in records)
                     + "; --executor ray --exclusive runs one job per node)")
    return lines


def check_comparable(records: list[RunRecord], resume: bool = False) -> None:
    """Records put side by side must have trained on the same train/validation split and,
    repeat by repeat, from the same initial weights (split_hash: the split's indices, so data
    of the same size read differently elsewhere is not caught; initial_weights_hash: every
    array). Raises UserError naming each record's hash and node; `resume`: in a study folder,
    where the same command repeats only the runs whose records were moved aside."""
    then = ("move the records that differ out of the study folder and run the same command: "
            "their runs are repeated" if resume else "then run again; the records are kept")
    if len({r.split_hash for r in records}) > 1:
        raise UserError("the records trained on different data splits ("
                        + "; ".join(f"{r.framework}: {r.split_hash} on "
                                    f"{r.environment.get('node', '?')}" for r in records)
                        + f"): check that every node reads the same data (--data-dir); {then}")
    for repeat in sorted({r.repeat for r in records}):
        hashes = {r.framework: (r.initial_weights_hash, r.environment.get("node", "?"))
                  for r in records if r.repeat == repeat}
        if len({h for h, _ in hashes.values() if h is not None}) > 1:
            raise UserError(f"the records of repeat {repeat} started from different initial "
                            "weights (" + "; ".join(f"{fw}: {h} on {node}" for fw, (h, node)
                                                    in hashes.items())
                            + f"): every node must run the same version of the suite; {then}")


def group_by_framework(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """The records per framework, in the order the frameworks first appear."""
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
    from scipy import stats  # ~0.4 s to import: only a repeated comparison needs it

    test = stats.ttest_ind(a, b, equal_var=False)
    low, high = test.confidence_interval(0.95)
    verdict = "significant" if test.pvalue < 0.05 else "not significant"
    return (head + f", 95% CI [{low:+.3f}, {high:+.3f}]{unit} "
            f"(Welch t-test p={test.pvalue:.3f}: {verdict} at 5%)")


def difference_lines(records: list[RunRecord]) -> list[str]:
    """Every other framework against the reference column (torch when it ran)."""
    groups = group_by_framework(records)
    ref = reference(list(groups)) if groups else None
    busy = busy_lines(records) + placement_lines(records)
    lines = [difference_line(records, key, label, scale, unit, framework)
             for framework in groups if framework != ref
             for key, label, scale, unit in (("test_accuracy", "test accuracy", 100.0, " pp"),
                                             ("test_loss", "test loss", 1.0, ""),
                                             ("train_seconds", "training seconds", 1.0, " s"))
             if not (busy and key == "train_seconds")]
    if busy:
        lines.append("training seconds: not compared, because " + "; ".join(busy)
                     + " (the time then depends on the machine and the other processes as "
                     "much as on the framework; rerun alike on idle machines)")
    return [line for line in [setup_warning(records), divergence_line(records),
                              validation_note(records), *lines] if line]


def validation_note(records: list[RunRecord]) -> str | None:
    """What a reader must know when the epochs were not monitored on a validation split:
    --validate-on test (the test accuracy is then not an unbiased estimate) or --val-size 0
    (the last epoch's weights were tested). None otherwise."""
    cfg = records[0].config if records else None
    if cfg is None:
        return None
    if cfg.validate_on == "test":
        return ("NOTE: --validate-on test: the epochs were monitored (and the best weights "
                "chosen) on the test set, so the test accuracy is not an unbiased estimate of "
                "accuracy on new data")
    if cfg.val_size == 0:
        return "NOTE: --val-size 0: no validation set; the last epoch's weights were tested"
    return None


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


def render_report(records: list[RunRecord], run_config: dict, transfer_section: list[str],
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
        *(["## Transfer learning", "", *transfer_section, ""] if transfer_section else []),
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

