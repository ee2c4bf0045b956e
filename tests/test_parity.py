"""Fairness, proven: with shared initial weights both frameworks compute the same logits and the
same one-step update for every preset and optimizer; the same seed reproduces each framework."""

from __future__ import annotations

import pytest
from conftest import records_of, run_compare, run_dirs

from common.launch import run_parity
from common.parity import TOLERANCE, case_to_dict, default_optimizers
from common.specs import PRESETS, count_params, customize, get_preset
from common.tasks import TASKS

# each preset on the input of a task that uses it (every preset is some task's default)
INPUT = {t.model: (t.input_shape, t.num_classes) for t in TASKS.values()}


@pytest.fixture(scope="module")
def parity():
    assert set(INPUT) == set(PRESETS), "a preset that no task uses needs an input shape here"
    cases = [case_to_dict(name, spec, *INPUT[name], 0, default_optimizers())
             for name, spec in PRESETS.items()]
    # batch norm variants of the small presets (moving statistics are compared apart)
    cases += [case_to_dict(f"{name}+bn", customize(PRESETS[name], batch_norm=True),
                           *INPUT[name], 1, default_optimizers())
              for name in ("digits_cnn", "mnist_cnn")]
    return run_parity(cases)


@pytest.mark.parametrize("name", list(PRESETS) + ["digits_cnn+bn", "mnist_cnn+bn"])
def test_logits_and_one_step_agree(parity, name):
    diffs = parity[name]["max_abs_diff"]
    assert diffs["logits"] < TOLERANCE
    for opt in default_optimizers():
        assert diffs[opt["name"]] < TOLERANCE, (opt["name"], diffs)
    if "+bn" in name:
        assert diffs["sgd moving stats"] < 1e-3  # unbiased vs biased variance: small, not zero


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_counts_agree(parity, name):
    params = parity[name]["params"]
    assert params["keras"] == params["torch"] == count_params(PRESETS[name], *INPUT[name])


def test_same_seed_reproduces_each_framework(tmp_path):
    args = ["--task", "digits", "--framework", "both", "--epochs", "2", "--train-size", "400",
            "--optimizer", "adam", "--no-restore-best"]
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        proc = run_compare(*args, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append({r.framework: r for r in records_of(run_dirs(out)[0])})
    for framework in ("keras", "torch"):
        a, b = runs[0][framework], runs[1][framework]
        strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
        assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]
        assert a.test_loss == b.test_loss and a.test_accuracy == b.test_accuracy
    # and a different seed gives a different run
    proc = run_compare(*args, "--seed", "1", "--framework", "torch", "--out", str(tmp_path / "s1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    other = records_of(run_dirs(tmp_path / "s1")[0])[0]
    assert other.history[0]["train_loss"] != runs[0]["torch"].history[0]["train_loss"]


def test_check_parity_prints_the_proof_without_data(tmp_path):
    """The user-facing report: shapes of a built-in task are known, so no dataset is needed."""
    proc = run_compare("--task", "mnist", "--framework", "both", "--check-parity",
                       "--cache-dir", str(tmp_path / "empty"), "--no-download",
                       "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")][1:]  # no header
    assert rows[0].startswith("| logits (inference) |")
    assert {r.split("|")[1].strip().rsplit(" ", 2)[-2] for r in rows[1:]} == {
        o["name"] for o in default_optimizers()}
    for row in rows:
        diff = float(row.split("|")[2])
        assert diff < TOLERANCE and row.rstrip().endswith("| yes |")
    mnist = TASKS["mnist"]
    params = count_params(get_preset(mnist.model), mnist.input_shape, mnist.num_classes)
    assert f"params keras {params:,}, torch {params:,}" in proc.stdout
    assert not (tmp_path / "out").exists()  # a check writes no results
