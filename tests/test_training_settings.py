"""Training settings labs set: --normalize (one implementation for both frameworks),
--val-size 0 (the last epoch is tested), --validate-on test (said in the report)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import main_error, records_of, run_compare, run_dirs

from common.data.prepare import normalization, standardisation

SMALL = ("--task", "digits", "--epochs", "2", "--train-size", "300", "--no-plots")


def cfg(normalize: str, pipeline: str = "cnn"):
    return SimpleNamespace(normalize=normalize, pipeline=pipeline, task="t")


@pytest.mark.parametrize("normalize, mean, std", [
    ("unit", 0.0, 1.0), ("symmetric", 0.5, 0.5), ("none", 0.0, 1 / 255),
    ("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
def test_fixed_normalizations(normalize, mean, std):
    x = np.random.default_rng(0).integers(0, 256, (4, 2, 2, 3)).astype(np.uint8)
    got_mean, got_std, constant = normalization(cfg(normalize), x)
    assert np.allclose(got_mean, mean) and np.allclose(got_std, std) and constant == ()
    standard = normalization(cfg("standardize"), x)
    assert all(np.allclose(a, b) for a, b in zip(standard[:2], standardisation(x)[:2]))
    transfer = normalization(cfg(normalize, "transfer"), x)  # [0, 1] for every backbone
    assert np.allclose(transfer[0], 0) and np.allclose(transfer[1], 1)


def test_val_size_0_tests_the_last_epoch(tmp_path):
    proc = run_compare(*SMALL, "--framework", "both", "--val-size", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NOTE: --val-size 0: no validation set; the last epoch's weights were tested" in \
        proc.stdout
    records = records_of(run_dirs(tmp_path)[0])
    for r in records:
        assert r.val_size == 0 and not r.config.restore_best and r.best_epoch == 0
        assert math.isnan(r.val_accuracy) and all(math.isnan(h["val_loss"]) for h in r.history)
        assert len(r.history) == 2 and r.train_size == 300
    assert records[0].test_loss == pytest.approx(records[1].test_loss, abs=1e-4)


def test_validate_on_test_monitors_the_test_set_and_says_so(tmp_path):
    proc = run_compare(*SMALL, "--framework", "torch", "--validate-on", "test",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the test accuracy is not an unbiased estimate" in proc.stdout
    (record,) = records_of(run_dirs(tmp_path)[0])
    assert record.config.validate_on == "test" and record.val_size == record.test_size
    best = record.history[record.best_epoch - 1]  # the restored epoch's scores are the test's
    assert best["val_accuracy"] == pytest.approx(record.test_accuracy)
    assert "unbiased" in (run_dirs(tmp_path)[0] / "report.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (("--val-size", "0", "--early-stopping", "2"), "--val-size 0 leaves no validation loss"),
    (("--validate-on", "test", "--val-size", "100"), "--validate-on test monitors the test set"),
    (("--normalize", "imagenet"), "--normalize imagenet needs RGB images"),
    (("--pipeline", "transfer", "--normalize", "unit"), "--normalize would be ignored"),
])
def test_settings_that_cannot_apply_are_one_line(capsys, tmp_path, argv, message):
    line = main_error(capsys, *SMALL, *argv, "--out", str(tmp_path / "out"))
    assert message in line
    assert not (tmp_path / "out").exists()
