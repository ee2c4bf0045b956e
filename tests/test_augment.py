"""Augmentation: one registry, per-sample batched transforms in PyTorch, Keras layers that only act
in training. Framework code runs in subprocesses (one framework per process, as in the suite)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, records_of, run_compare, run_dirs

from common.augment import AUGMENTATIONS, parse_augment
from common.errors import UserError

TORCH_CHECK = r"""
import torch
from torch_impl.augment import TRANSFORMS, build_augmenter
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 3, 16, 16)
for name, fn in TRANSFORMS.items():
    y = fn(x, g)
    assert y.shape == x.shape, name
    changed = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-6
    # per-sample randomness: not every image gets the same treatment (except near-identity draws)
    assert changed.any(), name
# flip: each image is either itself or its mirror
y = TRANSFORMS["flip"](x, g)
same, mirrored = (y == x).flatten(1).all(1), (y == x.flip(-1)).flatten(1).all(1)
assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
# crop: a whole-pixel shift of the image with zero fill, never beyond the pad
y = TRANSFORMS["crop"](x, g)
assert bool(torch.isin(y[0], torch.cat([x[0].flatten(), torch.zeros(1)])).all())
# contrast keeps each image's channel means
y = TRANSFORMS["contrast"](x, g)
assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=1e-5)
# the same seed gives the same augmentation
a, b = build_augmenter(("flip", "crop", "rotate"), 3, "cpu"), build_augmenter(("flip", "crop", "rotate"), 3, "cpu")
assert torch.equal(a(x), b(x))
print("ok")
"""

KERAS_CHECK = r"""
import numpy as np, keras
from keras_impl.augment import build_augmenter
from keras_impl.model import build_model
from common.specs import get_preset
names = tuple(%r)
front = build_augmenter(names, 0, (16, 16, 3))
assert len(front) == len(names)
x = np.random.default_rng(0).standard_normal((32, 16, 16, 3)).astype("float32")
aug = keras.Sequential([keras.Input((16, 16, 3)), *front])
assert np.array_equal(np.asarray(aug(x, training=False)), x)  # inactive at inference
assert not np.allclose(np.asarray(aug(x, training=True)), x)  # active in training
model = build_model(get_preset("digits_cnn"), (16, 16, 3), 10, front=front)
assert model.count_params() == build_model(get_preset("digits_cnn"), (16, 16, 3), 10).count_params()
print("ok")
"""


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_registry_validation_lists_choices():
    assert parse_augment("flip,crop") == ("flip", "crop")
    assert parse_augment(None) == ()
    with pytest.raises(UserError) as err:
        parse_augment("flip,warp")
    assert "warp" in str(err.value) and all(n in str(err.value) for n in AUGMENTATIONS)
    with pytest.raises(UserError, match="RGB"):
        parse_augment("grayscale", channels=1)


def test_torch_transforms_are_per_sample_and_batched():
    _run(TORCH_CHECK)


def test_keras_layers_act_only_in_training():
    _run(KERAS_CHECK % (list(AUGMENTATIONS),))


def test_augmented_run_end_to_end(tmp_path):
    proc = run_compare("--task", "digits", "--augment", "crop,contrast", "--epochs", "2",
                       "--train-size", "300", "--no-plots", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = records_of(run_dirs(tmp_path)[0])
    assert {r["framework"] for r in records} == {"keras", "torch"}
    assert all(r["config"]["augment"] == ["crop", "contrast"] for r in records)
