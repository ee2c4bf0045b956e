"""Fairness, proven: with shared initial weights both frameworks compute the same logits and the
same one-step update for every preset and optimizer; the same seed reproduces each framework."""

from __future__ import annotations

import json

import pytest
from conftest import records_of, run_compare, run_dirs

from common.parity import TOLERANCE, case_to_dict, default_optimizers, run_parity
from common.specs import PRESETS, customize

INPUT = {"digits_cnn": ((8, 8, 1), 10), "mnist_cnn": ((28, 28, 1), 10),
         "cifar10_cnn": ((32, 32, 3), 10)}


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    assert set(INPUT) == set(PRESETS), "add the new preset's input shape to INPUT"
    cases = [case_to_dict(name, spec, *INPUT[name], 0, default_optimizers())
             for name, spec in PRESETS.items()]
    # batch norm variants of the small presets (moving statistics are compared apart)
    cases += [case_to_dict(f"{name}+bn", customize(PRESETS[name], batch_norm=True),
                           *INPUT[name], 1, default_optimizers())
              for name in ("digits_cnn", "mnist_cnn")]
    return run_parity(cases, tmp_path_factory.mktemp("parity"))


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
    assert params["keras"] == params["torch"] > 0


def test_same_seed_reproduces_each_framework(tmp_path):
    args = ["--task", "digits", "--framework", "both", "--epochs", "2", "--train-size", "400",
            "--optimizer", "adam", "--no-restore-best"]
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        proc = run_compare(*args, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append({r["framework"]: r for r in records_of(run_dirs(out)[0])})
    for framework in ("keras", "torch"):
        a, b = runs[0][framework], runs[1][framework]
        strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
        assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b["history"]]
        assert a["test_loss"] == b["test_loss"] and a["test_accuracy"] == b["test_accuracy"]
    # and a different seed gives a different run
    proc = run_compare(*args, "--seed", "1", "--framework", "torch", "--out", str(tmp_path / "s1"))
    other = records_of(run_dirs(tmp_path / "s1")[0])[0]
    assert other["history"][0]["train_loss"] != runs[0]["torch"]["history"][0]["train_loss"]
    json.dumps(other)  # records are plain JSON
