"""Hyperparameter studies: --grid/--sweep parsing, a grid search on an image folder and a tiny
sweep on digits through compare.py, the diverged mark, and resuming an interrupted sweep without losing or
repeating runs."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, main_error, run_compare, run_dirs
from test_inputs import squares

from common.errors import UserError
from common.loop import Callbacks
from common.records import read_grid_record, read_record
from common.studies import study_folder
from common.study_settings import parse_study, point_name, product

TINY = ["--task", "digits", "--epochs", "2", "--train-size", "300", "--threads", "1"]


def table_rows(stdout: str) -> list[list[str]]:
    """The data rows of the last markdown table printed."""
    lines = stdout.strip().splitlines()
    end = len(lines)
    start = end
    while start > 0 and lines[start - 1].startswith("|"):
        start -= 1
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[start + 2:end]]


# --- parsing ------------------------------------------------------------------------------------

def test_parse_types_and_cartesian_product():
    study = parse_study(["lr=0.1,1e-3", "batch-size=32,64,128", "dense=64,128-32"], "sweep")
    assert study == {"lr": (0.1, 0.001), "batch_size": (32, 64, 128), "dense": ((64,), (128, 32))}
    points = product(study)
    assert len(points) == 2 * 3 * 2
    assert points[0] == {"lr": 0.1, "batch_size": 32, "dense": (64,)}
    assert points[-1] == {"lr": 0.001, "batch_size": 128, "dense": (128, 32)}
    names = [point_name(p) for p in points]
    assert len(set(names)) == len(names) and names[0] == "lr-0.1_batch_size-32_dense-64"
    assert parse_study(["optimizer=sgd,adam", "batch_norm=on,off"], "grid") == {
        "optimizer": ("sgd", "adam"), "batch_norm": (True, False)}


@pytest.mark.parametrize("specs,kind,expected", [
    (["foo=1,2"], "sweep", "unknown key 'foo'"),
    (["lr=0.1,abc"], "sweep", "'abc'"),
    (["lr=-1"], "grid", "positive"),
    (["batch_size=1.5"], "sweep", "integer"),
    (["optimizer=lion"], "grid", "sgd"),
    (["train_size=100,200"], "grid", "use --sweep"),
    (["lr"], "sweep", "KEY=V1,V2"),
    (["lr=0.1,0.1"], "sweep", "twice"),
    (["lr=0.1", "lr=0.2"], "sweep", "twice"),
])
def test_parse_errors_name_the_problem_and_list_valid_keys(specs, kind, expected):
    with pytest.raises(UserError, match="valid keys: optimizer, lr") as err:
        parse_study(specs, kind)
    assert expected in str(err.value)


def test_study_folder_is_named_after_the_arguments(tmp_path):
    from compare import build_parser, config_from_args

    def folder(*argv: str, cv: int | None = None) -> Path:
        args = build_parser().parse_args(["--task", "digits", *argv])
        return study_folder(tmp_path, "sweep", config_from_args(args), Callbacks(),
                            parse_study(["lr=0.1,0.01"], "sweep"), cv)

    same = folder("--epochs", "2")
    assert same == folder("--epochs", "2") and same.name.startswith("sweep-digits-")
    assert same != folder("--epochs", "3") and same != folder("--epochs", "2", cv=3)
    # where the data is read from does not change the results, so it does not change the folder
    assert same == folder("--epochs", "2", "--cache-dir", str(tmp_path / "elsewhere"))


@pytest.mark.parametrize("args,expected", [
    (["--sweep", "foo=1"], "valid keys"),
    (["--sweep", "lr=0.1,abc"], "valid keys"),
    (["--grid", "train_size=10,20"], "--sweep"),
    (["--grid", "lr=0.1", "--sweep", "lr=0.1"], "--grid and --sweep"),
    (["--grid", "lr=0.1", "--cv", "1"], "--cv"),
    (["--sweep", "train_size=100,999999"], "--train-size"),  # checked for every point up front
])
def test_bad_study_flags_are_one_line_and_write_nothing(tmp_path, capsys, args, expected):
    assert expected in main_error(capsys, "--task", "digits", *args, "--out", str(tmp_path))
    assert run_dirs(tmp_path) == []


# --- grid search ----------------------------------------------------------------------------------

def test_grid_on_folds_in_both_frameworks(tmp_path):
    """One grid search through compare.py, both frameworks, on an image folder: classes of 20,
    20, 5 and 5 images, every fold in one batch, dropout off, so the two frameworks' fold
    accuracies are identical. The same folds, split and candidates on both sides; each
    framework's cv_results CSV, tables and report. A class with fewer images than --cv: one
    line, nothing written."""
    squares(tmp_path / "f", {"red": (255, 0, 0), "green": (0, 255, 0)}, per_class=20)
    squares(tmp_path / "s", {"blue": (0, 0, 255), "white": (255, 255, 255)}, per_class=5)
    for name in ("blue", "white"):
        (tmp_path / "s" / name).rename(tmp_path / "f" / name)
    grid = ("--task", f"folder:{tmp_path / 'f'}", "--image-size", "16", "--grid", "lr=0.01,0.05",
            "--dropout", "0", "--framework", "both", "--epochs", "2", "--batch-size", "64",
            "--threads", "1", "--no-plots")
    proc = run_compare(*grid, "--cv", "3", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = run_dirs(tmp_path / "out")
    assert folder.name.startswith("grid-folder-f-")
    records = {fw: read_grid_record(folder / f"grid-{fw}.json") for fw in ("keras", "torch")}
    folds = {fw: [res.fold_accuracies for res in rec.results] for fw, rec in records.items()}
    assert folds["keras"] == folds["torch"]
    assert len({a for point in folds["torch"] for a in point}) > 1  # not all one value
    for fw, rec in records.items():
        rows = list(csv.DictReader((folder / f"cv_results-{fw}.csv").open()))
        assert [float(r["lr"]) for r in rows] == [0.01, 0.05]
        assert {"mean_test_score", "std_test_score", "mean_fit_time",
                "split2_test_score"} <= set(rows[0])
        for res in rec.results:
            assert 0.0 <= res.mean_cv_accuracy <= 1.0 and len(res.fold_accuracies) == 3
        assert rec.params == records["keras"].params
    # the same best point refitted alike (one batch per epoch, dropout off): the same test score
    assert records["keras"].test_accuracy == records["torch"].test_accuracy
    assert records["keras"].folds_hash == records["torch"].folds_hash
    assert records["keras"].split_hash == records["torch"].split_hash
    assert records["keras"].configs == records["torch"].configs
    # both frameworks' tables printed; the best-parameters table is the last thing printed
    assert "keras: GridSearchCV" in proc.stdout and "torch: GridSearchCV" in proc.stdout
    best = table_rows(proc.stdout)
    assert [row[0] for row in best] == ["keras", "torch"]
    assert all(row[1].startswith("lr=") for row in best)
    report = (folder / "report.md").read_text()
    assert "(cv_results-keras.csv)" in report and "(cv_results-torch.csv)" in report
    proc = run_compare(*grid, "--cv", "5", "--out", str(tmp_path / "refused"))
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("error: --cv 5: 2 classes have fewer training images")
    assert not (tmp_path / "refused").exists()


# --- sweep --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sweep_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """lr=1e6 blows SGD up within the first epoch (NaN loss) in both frameworks."""
    out = tmp_path_factory.mktemp("sweep")
    proc = run_compare(*TINY, "--framework", "both", "--sweep", "lr=1e6,0.01", "--out", str(out))
    dirs = run_dirs(out)
    return proc, dirs[0] if dirs else out


def test_sweep_marks_divergence_and_completes(sweep_run):
    proc, folder = sweep_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table_rows(proc.stdout)
    assert [(r[0], r[1]) for r in rows] == [
        ("1e+06", "keras"), ("1e+06", "torch"), ("0.01", "keras"), ("0.01", "torch")]
    status = {(r[0], r[1]): r[-1] for r in rows}
    assert status[("1e+06", "keras")].startswith("diverged")
    assert status[("1e+06", "torch")].startswith("diverged")
    for row in rows[2:]:
        assert row[-1] == "ok" and float(row[2]) > 0.2, row  # it learns (chance: 0.1)
    assert len(list(folder.glob("record-*.json"))) == 4
    report = (folder / "report.md").read_text()
    assert "(sweep-lr.png)" in report and (folder / "sweep-lr.png").stat().st_size > 1000


def test_interrupted_sweep_resumes_only_the_missing_runs(tmp_path):
    """Ctrl-C mid-sweep (SIGINT to the process group, as a terminal sends it), then the same
    command again: finished records are kept untouched, only the missing runs train."""
    args = [*TINY, "--framework", "torch", "--sweep", "lr=0.1,0.01,0.001", "--out", str(tmp_path)]
    # Its own process group, as a terminal's foreground job; SIGINT back to default, because a
    # background job of a non-interactive shell (e.g. pytest run with &) inherits it ignored.
    first = subprocess.Popen([sys.executable, str(ROOT / "compare.py"), *args], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/record-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode != 0  # interrupted runs say so
    (folder,) = run_dirs(tmp_path)
    kept = {p.name: p.stat().st_mtime_ns for p in folder.glob("record-*.json")}
    assert 1 <= len(kept) < 3
    assert not list(folder.glob(".record-*.tmp"))  # no half-written record

    proc = run_compare(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{len(kept)} finished run(s) kept, {3 - len(kept)} to go" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("record-*.json")
            if p.name in kept} == kept
    assert len(list(folder.glob("record-*.json"))) == 3
    rows = table_rows(proc.stdout)
    assert [r[0] for r in rows] == ["0.1", "0.01", "0.001"]  # complete, no duplicates
    assert all(r[-1] in ("ok", "at chance", "diverged (epoch 1)", "diverged (epoch 2)")
               for r in rows)


def test_corrupt_record_is_set_aside_and_its_run_repeated(sweep_run):
    """A study folder with a truncated record (a disk full, a copy gone wrong): resuming names
    the file in one warning line, keeps it as *.corrupt, re-runs that configuration only and
    keeps every good record untouched."""
    _, folder = sweep_run
    records = sorted(folder.glob("record-*.json"))
    bad = next(p for p in records if "0.01" in p.name and p.name.endswith("torch.json"))
    good = {p.name: p.stat().st_mtime_ns for p in records if p != bad}
    bad.write_text(bad.read_text()[:200])
    args = [*TINY, "--framework", "both", "--sweep", "lr=1e6,0.01", "--out", str(folder.parent)]
    proc = run_compare(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and bad.name in warnings[0] and "set aside" in warnings[0]
    assert "3 finished run(s) kept, 1 to go" in proc.stderr
    assert (folder / (bad.name + ".corrupt")).read_text().startswith("{")
    assert read_record(bad).framework == "torch"  # re-run, whole again
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("record-*.json")
            if p.name in good} == good
