"""Augmentation: one registry; every entry exists in both frameworks (parametrized over the
registry, timm-style), draws its parameters per sample, acts in training only and keeps shapes.
Framework code runs in subprocesses (one framework per process, as in the suite)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SMALL, records_of, run_compare, run_dirs

from common.augment import AUGMENTATIONS, parse_augment
from common.errors import UserError

# For every registry entry, in one framework's process: a batch of 64 copies of ONE image goes
# through the augmenter in training mode and in inference mode. Per-sample randomness means
# the 64 outputs are not all alike; inference mode must pass the batch through unchanged.
CHECK = r"""
import json, sys
import numpy as np
from common.augment import AUGMENTATIONS
from common.worker.process import impl
framework = sys.argv[1]
augment = impl(framework, "augment")
image = np.random.default_rng(0).standard_normal((1, 16, 16, 3)).astype("float32")
x = np.repeat(image, 64, axis=0)
out = {}
for name in [*AUGMENTATIONS, "flip=0.15", "grayscale=0.85"]:  # defaults, then given strengths
    layers = augment.build_augmenter((name,), 0, (16, 16, 3), "cpu")
    if framework == "torch":
        import torch
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        layers[0].train()
        train = layers[0](t).permute(0, 2, 3, 1).numpy()
        layers[0].eval()
        infer = layers[0](t).permute(0, 2, 3, 1).numpy()
    else:
        train = np.asarray(layers[0](x, training=True))
        infer = np.asarray(layers[0](x, training=False))
    flat = train.reshape(64, -1)
    distinct = len({row.round(4).tobytes() for row in flat})
    out[name] = {"layers": len(layers), "shape": list(train.shape), "distinct": distinct,
                 "unchanged": int((np.abs(flat - x.reshape(64, -1)).max(1) < 1e-6).sum()),
                 "inference_identity": bool(np.array_equal(infer, x))}
print(json.dumps(out))
"""


@pytest.fixture(scope="session", params=["keras", "torch"])
def behaviour(request) -> tuple[str, dict]:
    proc = subprocess.run([sys.executable, "-c", CHECK, request.param], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_augmentation_exists_and_is_per_sample(behaviour, name):
    framework, facts = behaviour
    assert name in facts, f"{framework} has no augmentation {name!r}"
    f = facts[name]
    assert f["layers"] == 1 and f["shape"] == [64, 16, 16, 3]
    assert f["inference_identity"], f"{framework} {name} acts at inference"
    # the same image, 64 times: per-sample draws give several different outputs
    assert f["distinct"] >= 2, (framework, name, f)
    if name in ("flip", "grayscale"):  # applied with probability p: some images untouched
        p = AUGMENTATIONS[name][1]
        assert 0 < f["unchanged"] < 64 and abs(f["unchanged"] / 64 - (1 - p)) < 0.25, f


@pytest.mark.parametrize("item, p", [("flip=0.15", 0.15), ("grayscale=0.85", 0.85)])
def test_a_given_probability_is_used_in_both_frameworks(behaviour, item, p):
    """Keras' own RandomFlip always flips half the images: the suite's flip takes its p."""
    framework, facts = behaviour
    assert abs(facts[item]["unchanged"] / 64 - (1 - p)) < 0.15, (framework, facts[item])


def test_registry_validation_lists_choices():
    assert parse_augment("flip,crop") == ("flip=0.5", "crop=4")  # the defaults, recorded
    assert parse_augment("flip=0.3, rotate=10,shift=0.05") == ("flip=0.3", "rotate=10",
                                                               "shift=0.05")
    for bad, problem in (("flip=1.5", "p must be in"), ("crop=2.5", "whole number"),
                         ("rotate=x", "must be a number"), ("zoom=0", "factor must be in")):
        with pytest.raises(UserError, match=problem):
            parse_augment(bad)
    assert parse_augment(None) == ()
    with pytest.raises(UserError) as err:
        parse_augment("flip,warp")
    assert "warp" in str(err.value) and all(n in str(err.value) for n in AUGMENTATIONS)
    with pytest.raises(UserError, match="RGB"):
        parse_augment("grayscale", channels=1)
    with pytest.raises(UserError, match="twice"):
        parse_augment("flip,flip")


def test_augmented_run_trains_on_augmented_batches(small_runs, tmp_path):
    """The same seed, split and shared weights with and without --augment: the first epoch's
    training loss differs in each framework (the batches changed), and the parameter count does
    not (augmentation has no weights)."""
    plain_out, _, _ = small_runs
    proc = run_compare("--task", "digits", *SMALL, "--augment", "crop,contrast",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = {r.framework: r for r in records_of(run_dirs(plain_out)[0])}
    augmented = {r.framework: r for r in records_of(run_dirs(tmp_path)[0])}
    for framework in ("keras", "torch"):
        assert augmented[framework].config.augment == ("crop=4", "contrast=0.2")
        assert augmented[framework].params == plain[framework].params
        assert (augmented[framework].history[0]["train_loss"]
                != plain[framework].history[0]["train_loss"])
