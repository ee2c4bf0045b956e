"""Shared initial weights: generated once from the architecture (ArchSpec) and the seed, loaded
into both.

Layout is Keras' (conv kernels HWIO, dense kernels (in, out)); `torch_impl.model.load_weights`
transposes them. The torch model flattens in HWC order (see torch_impl.model.FlattenHWC), so the
first dense layer after the flatten needs no row permutation. Values follow Keras' defaults:
glorot_uniform kernels, zero biases, BatchNorm gamma=1, beta=0, moving mean 0, variance 1. The
draws follow layer_table's order (one kernel per conv and dense layer), so an architecture that
derives the same table draws the same weights.
"""

from __future__ import annotations

import hashlib

import numpy as np

from common.specs import ArchSpec, layer_table


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_weights(
    arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """One dict per weighted layer (conv, batchnorm, dense), in layer_table order."""
    rng = np.random.default_rng([seed, 0x1A17])  # its own stream: independent of epoch order
    weights: list[dict[str, np.ndarray]] = []
    for layer in layer_table(arch, input_shape, num_classes):
        if layer.kind == "conv":
            k = layer.kernel_size
            conv = {"kernel": _glorot_uniform(rng, (k, k, layer.in_units, layer.units))}
            if layer.bias:
                conv["bias"] = np.zeros(layer.units, np.float32)
            weights.append(conv)
        elif layer.kind == "dense":
            dense = {"kernel": _glorot_uniform(rng, (layer.in_units, layer.units))}
            if layer.bias:
                dense["bias"] = np.zeros(layer.units, np.float32)
            weights.append(dense)
        elif layer.kind == "batchnorm":
            c = layer.units
            weights.append({
                "gamma": np.ones(c, np.float32), "beta": np.zeros(c, np.float32),
                "moving_mean": np.zeros(c, np.float32), "moving_variance": np.ones(c, np.float32),
            })
    return weights


def weights_hash(weights: list[dict[str, np.ndarray]]) -> str:
    """A short fingerprint (16 hex digits of SHA-256) of initial weights: every array's name,
    shape, dtype and bytes, in order. Two records with the same hash started from the same
    weights, on whichever machine they trained."""
    digest = hashlib.sha256()
    for i, layer in enumerate(weights):
        for name in sorted(layer):
            array = np.ascontiguousarray(layer[name])
            digest.update(f"{i}/{name}/{array.shape}/{array.dtype}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]
