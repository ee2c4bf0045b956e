"""compare.py as a user runs it: bad inputs give one line and a non-zero exit; digits end to end."""

from __future__ import annotations

import gzip

import pytest
from conftest import one_line_error, records_of, run_compare, run_dirs

from common.records import RECORD_KEYS


@pytest.mark.parametrize("flag,value,choices", [
    ("--task", "imagenet", ["digits", "mnist", "cifar10"]),
    ("--framework", "jax", ["both", "keras", "torch"]),
    ("--model", "vgg99", ["digits_cnn", "mnist_cnn", "cifar10_cnn"]),
    ("--optimizer", "lion", ["sgd", "adam", "rmsprop", "adagrad", "adadelta"]),
])
def test_unknown_choice_is_one_line_listing_the_choices(tmp_path, flag, value, choices):
    args = ["--task", "digits", flag, value, "--out", str(tmp_path)]
    proc = run_compare(*args, timeout=60)
    line = one_line_error(proc)
    assert value in line and all(c in line for c in choices)
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize("args,expected", [
    (["--train-size", "999999"], "--train-size"),
    (["--epochs", "0"], "--epochs"),
    (["--filters", "8,x"], "--filters"),
    (["--filters", "8/8/8/8"], "too deep"),  # 8x8 digits cannot take four pooling blocks
    (["--momentum", "0.5", "--optimizer", "adam"], "--momentum"),
])
def test_bad_values_are_one_line(tmp_path, args, expected):
    proc = run_compare("--task", "digits", *args, "--out", str(tmp_path), timeout=60)
    assert expected in one_line_error(proc)
    assert run_dirs(tmp_path) == []


def test_missing_data_offline_says_where_it_looked(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_compare("--task", "mnist", "--data-dir", str(empty), "--no-download",
                       "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                       timeout=60)
    line = one_line_error(proc)
    assert str(empty) in line and "--data-dir" in line
    assert run_dirs(tmp_path / "out") == []


def test_truncated_data_file_is_one_line(tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        payload = gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 200)
        (data / f"{name}.gz").write_bytes(payload[: len(payload) // 2])
    proc = run_compare("--task", "mnist", "--data-dir", str(data), "--no-download",
                       "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                       timeout=60)
    line = one_line_error(proc)
    assert "truncated" in line or "corrupt" in line, line
    assert run_dirs(tmp_path / "out") == []


def test_digits_end_to_end_both_frameworks(digits_run):
    proc, run_dir = digits_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["framework"]: r for r in records_of(run_dir)}
    assert set(records) == {"keras", "torch"}
    for r in records.values():
        assert r["test_accuracy"] >= 0.90, (r["framework"], r["test_accuracy"])
    # the table is the last thing printed, with both rows
    table = [line for line in proc.stdout.strip().splitlines()[-4:] if line.startswith("|")]
    assert len(table) == 4 and "keras" in table[2] and "torch" in table[3]
    assert "test accuracy" in table[0]
    report = (run_dir / "report.md").read_text()
    assert "| keras" in report and "split hash" in report
    assert (run_dir / "config.json").exists()


def test_records_schema_and_fairness(digits_run):
    _, run_dir = digits_run
    records = records_of(run_dir)
    assert len(records) == 2
    for r in records:
        assert set(RECORD_KEYS) <= set(r), set(RECORD_KEYS) - set(r)
        assert r["params"] == r["expected_params"]
        assert len(r["history"]) == r["config"]["epochs"] == len(r["epoch_seconds"])
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(r["history"][0])
        env = r["environment"]
        assert env["threads"] == r["config"]["threads"] and env["device"] == "cpu"
        assert r["framework"] in env and env["python"]
        assert r["train_seconds"] == pytest.approx(sum(r["epoch_seconds"]))
    keras, torch = sorted(records, key=lambda r: r["framework"])
    assert keras["split_hash"] == torch["split_hash"]
    assert keras["params"] == torch["params"]
    assert keras["config"] == torch["config"]
    # each framework ran in its own process and never loaded the other
    assert "torch" not in keras["environment"] and "tensorflow" not in torch["environment"]


def test_early_stopping_uses_one_rule_in_both(tmp_path):
    # a learning rate too high for Adam on a small training set: validation loss soon rises
    proc = run_compare("--task", "digits", "--optimizer", "adam", "--lr", "0.02",
                       "--train-size", "200", "--epochs", "12", "--early-stopping", "2",
                       "--no-plots", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {r["framework"]: r for r in records_of(run_dirs(tmp_path)[0])}
    for r in records.values():
        losses = [h["val_loss"] for h in r["history"]]
        best = r["best_epoch"]
        assert r["stopped_early"] and len(losses) == best + 2  # patience 2 after the best epoch
        assert min(losses) == losses[best - 1] and all(v >= losses[best - 1] for v in losses[best:])
    assert records["keras"]["best_epoch"] == records["torch"]["best_epoch"]
