"""--framework: both, all, or a comma list of keras, keras-jax, keras-torch, torch; a name
that is unknown, repeated or not installed is one line saying what to do."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import main_error, records_of, run_compare, run_dirs

from common import frameworks
from common.errors import UserError
from common.frameworks import BOTH, FRAMEWORKS, installed, parse_frameworks


def test_both_is_keras_and_torch_and_a_list_keeps_its_order():
    assert parse_frameworks("both") == BOTH == ("keras", "torch")
    assert parse_frameworks("torch, keras-jax") == ("torch", "keras-jax")
    assert parse_frameworks("all") == installed()


@pytest.mark.parametrize("text", ["jax", "keras,", "keras,keras", ","])
def test_bad_lists_are_refused(text):
    if text == "keras,":  # a trailing comma is forgiven
        assert parse_frameworks(text) == ("keras",)
        return
    with pytest.raises(UserError):
        parse_frameworks(text)


def test_a_framework_that_is_not_installed_names_what_to_install(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(frameworks.importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    assert "keras-jax" not in parse_frameworks("all")
    line = main_error(capsys, "--task", "digits", "--framework", "keras,keras-jax",
                      "--out", str(tmp_path))
    assert "keras-jax needs jax" in line and FRAMEWORKS["keras-jax"].install in line, line
    assert run_dirs(tmp_path) == []


def test_grid_refuses_the_keras_backends_scikeras_cannot_drive(capsys, tmp_path):
    line = main_error(capsys, "--task", "digits", "--framework", "keras-torch,torch",
                      "--grid", "lr=0.1,0.01", "--out", str(tmp_path))
    assert "keras-torch" in line and "--sweep" in line, line
    assert run_dirs(tmp_path) == []


def test_grid_refuses_a_scikit_learn_that_breaks_scikeras(monkeypatch, capsys, tmp_path):
    real = frameworks.importlib.metadata.version
    monkeypatch.setattr(frameworks.importlib.metadata, "version",
                        lambda name: "1.6.1" if name == "scikit-learn" else real(name))
    args = ("--task", "digits", "--grid", "lr=0.1,0.01", "--out", str(tmp_path))
    line = main_error(capsys, *args)
    assert "scikit-learn 1.6.1" in line and "scikit-learn>=1.7" in line, line
    assert run_dirs(tmp_path) == []
    # skorch is not affected: torch alone passes this check and stops at the next one
    line = main_error(capsys, *args, "--framework", "torch", "--early-stopping", "2")
    assert "no validation set" in line, line


def test_every_framework_as_a_column_fast_and_mixed_bfloat16(tmp_path):
    """--framework all --mode fast --precision mixed_bfloat16: a row per framework, each in its
    own process on the same split with the same parameter count, the setup in every row and
    record, and no TensorFlow in the JAX and PyTorch-backend processes."""
    proc = run_compare("--task", "digits", "--framework", "all", "--mode", "fast",
                       "--precision", "mixed_bfloat16", "--epochs", "3", "--no-plots",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {r.framework: r for r in records_of(run_dirs(tmp_path)[0])}
    assert tuple(records) == installed() == tuple(FRAMEWORKS)
    assert len({r.split_hash for r in records.values()}) == 1
    assert len({r.params for r in records.values()}) == 1
    for name, r in records.items():
        assert (r.config.mode, r.config.precision, r.config.deterministic) == (
            "fast", "mixed_bfloat16", False)
        assert r.environment["framework"] == name
        assert r.test_accuracy >= 0.85, (name, r.test_accuracy)  # 0.93-0.94 measured
        loaded = r.environment["loaded_frameworks"]
        assert ("tensorflow" in loaded) == (name == "keras"), (name, loaded)
        assert ("torch" in loaded) == (name in ("torch", "keras-torch")), (name, loaded)
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")][1:]  # no header
    assert [row.split("|")[1].strip() for row in rows] == list(records)
    assert all("| cpu, fast, mixed_bfloat16 |" in row for row in rows), rows
