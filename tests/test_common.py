"""common/: framework-free, and its pieces (specs, splits, metrics, reports) behave."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from common.errors import UserError
from common.metrics import confusion, cross_entropy, score
from common.optim import OPTIMIZERS, resolve_optimizer
from common.knobs import (conv_batch_norm, conv_filters, conv_kernel, customize, dense_dropout,
                          hidden_dense, parse_filters)
from common.specs import PRESETS, count_params, get_preset, layer_table, same_padding
from common.splits import epoch_order, make_split

# every module of common/ and its packages (common.worker's __main__ runs only as a process)
COMMON_MODULES = sorted(".".join(p.relative_to(ROOT / "common").with_suffix("").parts)
                        for p in (ROOT / "common").rglob("*.py")
                        if p.stem not in ("__init__", "__main__"))


def test_common_and_the_parent_import_no_framework():
    """Every common module, compare.py, and a built-in task's loading (sklearn for digits,
    pooch for downloads) leave torch, TensorFlow, Keras and JAX unloaded."""
    code = (
        "import sys, importlib, pooch\n"
        f"for m in {COMMON_MODULES!r}: importlib.import_module('common.' + m)\n"
        "import compare\n"
        "from common.tasks import load_dataset\n"
        "load_dataset('digits')\n"
        "from common.worker.process import FRAMEWORK_MODULES\n"
        "print(sorted(m for m in FRAMEWORK_MODULES if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_cifar10_preset_shapes_are_derived():
    table = layer_table(get_preset("cifar10_cnn"), (32, 32, 3), 10)
    flatten = next(layer for layer in table if layer.kind == "flatten")
    assert flatten.out_shape == (256 * 4 * 4,)
    convs = [layer.units for layer in table if layer.kind == "conv"]
    assert convs == [32, 64, 64, 128, 128, 256]
    dense = [layer.units for layer in table if layer.kind == "dense"]
    assert dense == [256, 64, 10]
    assert sum(layer.kind == "dropout" for layer in table) == 1


def test_mnist_preset_is_one_valid_conv():
    table = layer_table(get_preset("mnist_cnn"), (28, 28, 1), 10)
    conv = [layer for layer in table if layer.kind == "conv"]
    assert len(conv) == 1 and conv[0].units == 32 and conv[0].padding == "valid"
    assert conv[0].out_shape == (26, 26, 32) and conv[0].stride == 1
    # hand count: conv 3*3*1*32+32, dense 26*26*32*128+128, classifier 128*10+10
    assert count_params(get_preset("mnist_cnn"), (28, 28, 1), 10) == 320 + 21632 * 128 + 128 + 1290


def test_customize_knobs():
    spec = customize(get_preset("cifar10_cnn"), filters=parse_filters("8,8/16"), kernel_size=5,
                     dense=(32,), dropout=0.25, batch_norm=True)
    assert conv_filters(spec) == ((8, 8), (16,))
    assert conv_kernel(spec) == 5 and conv_batch_norm(spec)
    assert hidden_dense(spec) == (32,) and dense_dropout(spec) == 0.25
    with pytest.raises(UserError, match="--filters"):
        parse_filters("8,x")
    with pytest.raises(UserError, match="too deep"):
        layer_table(customize(get_preset("digits_cnn"), filters=parse_filters("8/8/8/8")), (8, 8, 1), 10)


def test_unknown_preset_and_optimizer_list_choices():
    with pytest.raises(UserError) as err:
        get_preset("vgg99")
    assert all(name in str(err.value) for name in PRESETS)
    with pytest.raises(UserError) as err:
        resolve_optimizer("lion")
    assert all(name in str(err.value) for name in OPTIMIZERS)


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (32, 3, 1, (1, 1)), (32, 3, 2, (0, 1)), (7, 3, 2, (1, 1)), (8, 4, 1, (1, 2)), (5, 1, 2, (0, 0)),
])
def test_same_padding_matches_tensorflow_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_split_is_deterministic_disjoint_and_hashed():
    a = make_split(1000, 100, 500, seed=3)
    b = make_split(1000, 100, 500, seed=3)
    c = make_split(1000, 100, 500, seed=4)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val) and a.hash == b.hash
    assert a.hash != c.hash
    assert len(a.train) == 500 and len(a.val) == 100
    assert not set(a.train) & set(a.val)
    full = make_split(1000, 100, None, seed=3)
    assert len(full.train) == 900 and np.array_equal(full.val, a.val)


def test_split_rejects_impossible_sizes():
    with pytest.raises(UserError, match="--train-size"):
        make_split(100, 10, 95, seed=0)
    with pytest.raises(UserError, match="--val-size"):
        make_split(100, 100, None, seed=0)


def test_epoch_order_is_a_seeded_permutation():
    a, b = epoch_order(50, 0, 1), epoch_order(50, 0, 2)
    assert sorted(a) == list(range(50)) and not np.array_equal(a, b)
    assert np.array_equal(a, epoch_order(50, 0, 1))


def test_metrics_against_hand_computation():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1000.0, 0.0, 0.0]])
    labels = np.array([0, 1, 0])
    p = np.exp(logits[:2]) / np.exp(logits[:2]).sum(1, keepdims=True)
    expected = -(np.log(p[0, 0]) + np.log(p[1, 1]) + 0.0) / 3
    assert cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-12)
    s = score(logits, labels)
    assert s.accuracy == pytest.approx(2 / 3)
    assert confusion(logits, labels, 3).tolist() == [[2, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert np.isnan(score(np.array([[np.nan, 0.0]]), np.array([0])).loss)


def test_accuracy_and_confusion_are_scikit_learns():
    """common.metrics computes them with numpy (no scikit-learn import in a framework process);
    on random predictions, with classes that never occur or are never predicted, they equal
    scikit-learn's accuracy_score and confusion_matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix

    rng = np.random.default_rng(0)
    for n, classes in ((1, 2), (37, 3), (500, 10)):
        logits = rng.normal(size=(n, classes))
        labels = rng.integers(0, classes - 1, size=n)  # the last class never occurs
        predicted = logits.argmax(axis=1)
        assert score(logits, labels).accuracy == accuracy_score(labels, predicted)
        expected = confusion_matrix(labels, predicted, labels=range(classes))
        assert np.array_equal(confusion(logits, labels, classes), expected)
