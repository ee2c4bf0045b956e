"""Every layer configuration the architecture format allows computes the same function on every
installed Keras backend and in PyTorch: conv, max-pool and average-pool, for each kernel size,
stride and padding ('same' and 'valid' with TensorFlow's rule, an integer with PyTorch's), on even
and odd input sizes (where TensorFlow's 'same' padding is asymmetric or symmetric). One parity
run, each framework in its own process (common.launch).

Keras 3.15's AveragePooling2D(padding="same") on the torch backend averages differently from
TensorFlow when the padding is asymmetric (size 3, stride 2, 16x16: 0.1 apart); keras_impl.model
pads explicitly there (AvgPoolSame), and this test is what shows it.
"""

from __future__ import annotations

import itertools

import pytest

from common.frameworks import REFERENCE, installed, is_keras
from common.launch import run_parity
from common.optim import resolve_optimizer
from common.parity import TOLERANCE, case_to_dict
from common.specs import ArchSpec, layer

KINDS = ("conv", "maxpool", "avgpool")
KERNELS = (1, 2, 3)
STRIDES = (1, 2)
PADDINGS = ("same", "valid", 1)  # 1: PyTorch's integer padding on every side
SIZES = (8, 7)  # even and odd: 'same' pads asymmetrically for some (kernel, stride) on each
CHANNELS, NUM_CLASSES = 2, 3
UNDER_TEST = (REFERENCE, *(f for f in installed() if is_keras(f)))
# A pool's integer padding is at most half its window (PyTorch's rule; the format refuses more).
CONFIGS = [c for c in itertools.product(KINDS, KERNELS, STRIDES, PADDINGS, SIZES)
           if not (c[0] != "conv" and isinstance(c[3], int) and c[3] > c[1] // 2)]


def case_name(kind: str, kernel: int, stride: int, padding: str, size: int) -> str:
    return f"{kind}-k{kernel}-s{stride}-{padding}-{size}px"


def network(kind: str, kernel: int, stride: int, padding: str) -> ArchSpec:
    """The layer under test on the raw input, then a dense classifier that sees every output.
    A linear conv keeps negative outputs (a ReLU would hide differences below zero)."""
    if kind == "conv":
        under_test = layer("conv", filters=3, kernel=kernel, stride=stride, padding=padding,
                           activation="linear")
    else:
        under_test = layer(kind, size=kernel, stride=stride, padding=padding)
    return ArchSpec(name="layer", layers=(under_test, layer("flatten")))


@pytest.fixture(scope="session")
def layer_parity():
    cases = [case_to_dict(case_name(*config), network(*config[:4]),
                          (config[4], config[4], CHANNELS), NUM_CLASSES, 0,
                          [resolve_optimizer("sgd")])
             for config in CONFIGS]
    return run_parity(cases, UNDER_TEST)


@pytest.mark.parametrize("config", CONFIGS, ids=[case_name(*c) for c in CONFIGS])
def test_layer_configuration_agrees_on_every_backend(layer_parity, config):
    result = layer_parity[case_name(*config)]
    assert set(result["max_abs_diff"]) == set(UNDER_TEST) - {REFERENCE}
    assert len(set(result["params"].values())) == 1, result["params"]
    for framework, diffs in result["max_abs_diff"].items():
        assert diffs["logits"] < TOLERANCE, (framework, diffs)
        assert diffs["sgd"] < TOLERANCE, (framework, diffs)
