"""Keras half of the parity check (see common/parity.py; common.worker runs it). Mirrors
torch_impl/parity.py.

The one training step is Keras' own train step (train_on_batch: the loss's gradients, then the
optimizer's step; the same loss and optimizer as training), on any backend. It runs eagerly: a
compiled train_on_batch per optimizer would trace a new graph every time, which made the
registry-wide check several times slower. On TensorFlow it gives exactly the weights a gradient
tape and apply_gradients gave (measured: max difference 0.0).
"""

from __future__ import annotations

import keras
import numpy as np

from common.init import initial_weights
from common.parity import without_dropout
from common.specs import ArchSpec
from keras_impl.model import build_model, count_params, export_weights, load_weights
from keras_impl.optim import make_optimizer


def _model(arch: ArchSpec, input_shape, num_classes: int, weights) -> keras.Sequential:
    model = build_model(arch, input_shape, num_classes)
    load_weights(model, weights)
    return model


def parity_outputs(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int,
                   x: np.ndarray, y: np.ndarray, optimizers: list[dict]) -> dict[str, np.ndarray]:
    """From the shared initial weights of `arch` (common.init): the logits of `x` (N, H, W, C)
    float32 in inference mode, and per optimizer of `optimizers` the weights after one training
    step on (x, int64 labels `y`), as named arrays (common.parity.compare_outputs reads them).
    Mirrors torch_impl.parity.parity_outputs."""
    weights = initial_weights(arch, input_shape, num_classes, seed)
    model = _model(arch, input_shape, num_classes, weights)
    out = {"logits": keras.ops.convert_to_numpy(model(x, training=False))}
    model = _model(without_dropout(arch), input_shape, num_classes, weights)
    for hp in optimizers:
        load_weights(model, weights)  # every optimizer starts from the shared weights
        model.compile(optimizer=make_optimizer(hp),
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
