"""compare.py as a user runs it: every bad input or fault is one line, a non-zero exit and nothing
written (error paths in-process through compare.main; one subprocess test keeps the stderr and
exit-code contract); digits end to end, with its records."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, main_error, one_line_error, records_of, run_compare, run_dirs

from common.frameworks import FRAMEWORKS
from common.optim import OPTIMIZERS
from common.specs import PRESETS, count_params, get_preset
from common.tasks import TASKS


def test_a_bad_flag_is_one_line_on_stderr_and_exit_2(tmp_path):
    """The contract every error path below relies on, as a user sees it in a terminal."""
    proc = run_compare("--task", "digits", "--epochs", "0", "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert "--epochs" in one_line_error(proc)
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize("flag,value,choices", [
    ("--task", "imagenet", [*TASKS, "folder:PATH", "csv:FILE"]),
    ("--framework", "jax", ["both", "all", *FRAMEWORKS]),
    ("--model", "vgg99", list(PRESETS)),
    ("--optimizer", "lion", list(OPTIMIZERS)),
])
def test_unknown_choice_is_one_line_listing_the_choices(tmp_path, capsys, flag, value, choices):
    line = main_error(capsys, "--task", "digits", flag, value, "--out", str(tmp_path))
    assert value in line and all(c in line for c in choices), line
    assert run_dirs(tmp_path) == []


@pytest.mark.parametrize("args,expected", [
    (["--train-size", "999999"], "--train-size"),
    (["--epochs", "0"], "--epochs"),
    (["--filters", "8,x"], "--filters"),
    (["--filters", "8/8/8/8"], "too deep"),  # 8x8 digits cannot take four pooling blocks
    (["--momentum", "0.5", "--optimizer", "adam"], "--momentum"),
    (["--repeats", "0"], "--repeats"),
    (["--augment", "grayscale"], "RGB"),
    (["--pipeline", "transfer", "--sweep", "lr=0.1,0.01"], "--pipeline transfer"),
])
def test_bad_values_are_one_line(tmp_path, capsys, args, expected):
    assert expected in main_error(capsys, "--task", "digits", *args, "--out", str(tmp_path))
    assert run_dirs(tmp_path) == []


def test_out_naming_a_file(tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("not a folder")
    line = main_error(capsys, "--task", "digits", "--out", str(out))
    assert str(out) in line and "folder" in line
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize("framework,build", [("both", "tensorflow[and-cuda]"),
                                             ("keras-jax", "jax[cuda12]")])
def test_device_cuda_without_a_gpu_writes_nothing(tmp_path, capsys, framework, build):
    """This machine has no GPU (and CPU builds of TensorFlow and jaxlib): the framework process
    says so, and which build would use one, before any folder exists."""
    line = main_error(capsys, "--task", "digits", "--framework", framework, "--device", "cuda",
                      "--out", str(tmp_path))
    assert "--device cuda" in line and "--device cpu" in line and build in line, line
    assert not tmp_path.exists() or run_dirs(tmp_path) == []


def test_float16_on_the_cpu_is_refused_before_anything_is_written(tmp_path, capsys):
    line = main_error(capsys, "--task", "digits", "--precision", "mixed_float16",
                      "--out", str(tmp_path))
    assert "mixed_float16" in line and "mixed_bfloat16" in line, line
    assert not tmp_path.exists() or run_dirs(tmp_path) == []


def test_transfer_study_is_rejected_before_any_download(tmp_path, capsys, monkeypatch):
    """Validation comes before I/O: the data loader must not even be called."""
    import common.cli

    def no_io(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were checked")

    monkeypatch.setattr(common.cli, "load_dataset", no_io)
    line = main_error(capsys, "--task", "cifar10", "--pipeline", "transfer", "--weights", "none",
                      "--sweep", "lr=0.1,0.01", "--cache-dir", str(tmp_path / "cache"),
                      "--out", str(tmp_path / "out"))
    assert "--grid and --sweep" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_missing_data_offline_says_where_it_looked(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = main_error(capsys, "--task", "mnist", "--data-dir", str(empty), "--no-download",
                      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert str(empty) in line and "--data-dir" in line
    assert run_dirs(tmp_path / "out") == []


def test_truncated_data_file_is_one_line(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        payload = gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 200)
        (data / f"{name}.gz").write_bytes(payload[: len(payload) // 2])
    line = main_error(capsys, "--task", "mnist", "--data-dir", str(data), "--no-download",
                      "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"))
    assert "truncated" in line or "corrupt" in line, line
    assert run_dirs(tmp_path / "out") == []


def test_ctrl_c_while_a_framework_starts_is_one_line(tmp_path):
    """SIGINT to the whole process group (what a terminal sends) while the first framework
    process is importing: one line from the parent, no traceback from anyone."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "compare.py"), "--task", "digits", "--no-plots",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
        # a background job of a non-interactive shell inherits SIGINT ignored: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(out.glob("*/job-keras.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # inside the worker's framework import
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "interrupted" in lines[-1], stderr
    assert (run_dirs(out)[0] / "config.json").is_file()  # what was written is kept


def test_digits_end_to_end_both_frameworks(digits_run):
    proc, run_dir = digits_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r.framework: r for r in records_of(run_dir)}
    assert set(records) == {"keras", "torch"}
    for r in records.values():
        assert r.test_accuracy >= 0.90, (r.framework, r.test_accuracy)
    # the table is the last thing printed, with both rows
    table = [line for line in proc.stdout.strip().splitlines()[-4:] if line.startswith("|")]
    assert len(table) == 4 and "keras" in table[2] and "torch" in table[3]
    assert "test accuracy" in table[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    to_target = cells[0].index("s to 0.9 val. accuracy")
    for row in cells[2:]:  # both reach 90% validation accuracy within 3 epochs
        seconds = float(row[cells[0].index("training s")].removesuffix(" (busy)"))
        assert 0 < float(row[to_target]) <= seconds
    report = (run_dir / "report.md").read_text()
    assert "| keras" in report and "split hash" in report
    assert (run_dir / "config.json").exists()
    # TensorFlow's C++ start-up lines never reach the terminal
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr


def test_records_are_fair_and_from_separate_processes(digits_run):
    _, run_dir = digits_run
    records = records_of(run_dir)
    assert len(records) == 2
    task = TASKS["digits"]
    expected = count_params(get_preset(task.model), task.input_shape, task.num_classes)
    for r in records:
        assert r.params == r.expected_params == expected
        assert len(r.history) == r.config.epochs == len(r.epoch_seconds)
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(
            r.history[0])
        env = r.environment
        assert env["threads"] == r.config.threads and env["device"] == "cpu"
        assert r.framework == env["framework"] and env["python"]
        assert isinstance(env["compiled"], str) and env["compiled"]  # one type on both sides
        assert r.train_seconds == pytest.approx(sum(r.epoch_seconds))
    keras, torch = sorted(records, key=lambda r: r.framework)
    assert keras.split_hash == torch.split_hash
    assert keras.params == torch.params
    assert keras.config == torch.config
    # each framework ran in its own process and never loaded the other (read from sys.modules
    # in the worker when the run ended)
    assert "tensorflow" in keras.environment["loaded_frameworks"]
    assert not {"torch", "torchvision"} & set(keras.environment["loaded_frameworks"])
    assert "torch" in torch.environment["loaded_frameworks"]
    assert not {"tensorflow", "keras"} & set(torch.environment["loaded_frameworks"])


def expected_lrs(val_losses: list[float], lr: float, factor: float, patience: int,
                 min_lr: float) -> list[float]:
    """The README's reduce-on-plateau rule replayed on a run's validation losses."""
    lrs, best, wait = [], float("inf"), 0
    for loss in val_losses:
        lrs.append(lr)
        if loss < best:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr, wait = max(lr * factor, min_lr), 0
    return lrs


def test_early_stopping_reduce_lr_on_plateau_and_native_init_end_to_end(tmp_path):
    """One run of three callbacks' settings. --early-stopping and --reduce-lr-on-plateau follow
    one rule in both frameworks (each replayed here from the run's validation losses: a
    learning rate too high for Adam on a small training set, so the validation loss soon
    rises); --init native starts each framework from its own initialisation (different first
    losses, unlike the shared start)."""
    proc = run_compare("--task", "digits", "--optimizer", "adam", "--lr", "0.05",
                       "--train-size", "200", "--epochs", "12", "--init", "native",
                       "--early-stopping", "2", "--reduce-lr-on-plateau", "0.5,1,0.001",
                       "--threads", "1", "--no-plots", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {r.framework: r for r in records_of(run_dirs(tmp_path)[0])}
    reduced = 0
    for r in records.values():
        lrs = [h["lr"] for h in r.history]
        losses = [h["val_loss"] for h in r.history]
        assert lrs == pytest.approx(expected_lrs(losses, 0.05, 0.5, 1, 0.001)), (lrs, losses)
        reduced += min(lrs) < 0.05
        best = r.best_epoch
        assert r.stopped_early and len(losses) == best + 2, (best, losses)  # patience 2
        assert min(losses) == losses[best - 1] and all(v >= losses[best - 1] for v in losses[best:])
        assert r.config.init == "native"
    assert reduced, "no plateau in either framework: the rule was not exercised"
    first = [records[fw].history[0]["train_loss"] for fw in ("keras", "torch")]
    assert first[0] != pytest.approx(first[1], abs=1e-3)  # not the shared start


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"]])
def test_help_prints_every_flag(capsys, argv):
    import compare

    with pytest.raises(SystemExit) as err:
        compare.main(argv)
    assert err.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text and ("--task" in text if argv == ["--help"] else "--format" in text)
