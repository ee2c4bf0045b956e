"""Keras half of the parity check (see common/parity.py; common.worker runs it). Mirrors
torch_impl/parity.py.

The one training step is Keras' own train step (train_on_batch: the loss's gradients, then the
optimizer's step; the same loss and optimizer as training), on any backend. It runs eagerly: a
compiled train_on_batch per optimizer would trace a new graph every time, which made the
registry-wide check several times slower. On TensorFlow it gives exactly the weights a gradient
tape and apply_gradients gave (measured: max difference 0.0).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import keras
import numpy as np

from common.init import initial_weights
from common.parity import exact_hyperparameters, without_dropout
from common.specs import ArchSpec
from keras_impl.model import build_layers, build_model, count_params, export_weights, load_weights
from keras_impl.optim import make_optimizer


@contextmanager
def precision(dtype: str) -> Iterator[None]:
    """Within the block Keras builds every layer and variable in `dtype` ('float32' or
    'float64': keras.config.floatx), and on JAX 64-bit arrays exist (jax_enable_x64).
    Mirrors torch_impl.parity.precision."""
    previous = keras.config.floatx()
    x64 = keras.backend.backend() == "jax" and dtype == "float64"
    if x64:
        import jax

        was_x64 = bool(jax.config.jax_enable_x64)
        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
        if x64:
            jax.config.update("jax_enable_x64", was_x64)


def layer_outputs(arch: ArchSpec, input_shape, num_classes: int, weights,
                  x: np.ndarray) -> list[np.ndarray]:
    """The output of each row of common.specs.layer_table for `x` (N, H, W, C), in inference
    mode, from `weights`: NHWC maps and (N, units) vectors; the last is the logits. Mirrors
    torch_impl.parity.layer_outputs."""
    rows = build_layers(arch, input_shape, num_classes)
    layers = [layer for row in rows for layer in row]
    model = keras.Sequential([keras.Input(shape=input_shape), *layers])
    load_weights(model, weights)
    outputs, h = [], x
    for row in rows:
        for layer in row:
            h = layer(h, training=False)
        outputs.append(keras.ops.convert_to_numpy(h))
    return outputs


def _model(arch: ArchSpec, input_shape, num_classes: int, weights) -> keras.Sequential:
    model = build_model(arch, input_shape, num_classes)
    load_weights(model, weights)
    return model


def parity_outputs(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int,
                   x: np.ndarray, y: np.ndarray, optimizers: list[dict],
                   dtype: str = "float32") -> dict[str, np.ndarray]:
    """From the shared initial weights of `arch` (common.init), computed in `dtype`: the output
    of each layer-table row for `x` (N, H, W, C) in inference mode (the last: the logits), and
    per optimizer of `optimizers` the weights after one training step on (x, int64 labels `y`),
    as named arrays (common.parity.compare_outputs reads them). Mirrors
    torch_impl.parity.parity_outputs."""
    weights = initial_weights(arch, input_shape, num_classes, seed)
    x = x.astype(dtype)
    with precision(dtype):
        rows = layer_outputs(arch, input_shape, num_classes, weights, x)
        out = {"logits": rows[-1], **{f"activations/{i}": a for i, a in enumerate(rows)}}
        model = _model(without_dropout(arch), input_shape, num_classes, weights)
        for hp in optimizers:
            load_weights(model, weights)  # every optimizer starts from the shared weights
            model.compile(optimizer=make_optimizer(exact_hyperparameters(hp, dtype)),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          run_eagerly=True)
            model.train_on_batch(x, y)  # the batch mean of the loss, one optimizer step
            for i, layer in enumerate(export_weights(model)):
                key = hp.get("label", hp["name"])  # a label tells optimizers of one name apart
                out.update({f"{key}/{i}/{k}": v for k, v in layer.items()})
    return out


def count_model_params(arch: ArchSpec, input_shape, num_classes: int) -> int:
    """Trainable parameters of the model built from `arch` for (H, W, C) inputs and `num_classes`."""
    return count_params(build_model(arch, input_shape, num_classes))
