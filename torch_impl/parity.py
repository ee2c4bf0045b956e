"""PyTorch half of the parity check (see common/parity.py; common.worker runs it). Mirrors
keras_impl/parity.py.

The one training step is the training loop's: the loss's gradients, then the optimizer's step
(keras_impl/parity.py explains why that side takes its step eagerly too).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from common.init import initial_weights
from common.parity import exact_hyperparameters, without_dropout
from common.specs import ArchSpec
from torch_impl.model import build_layers, build_model, count_params, export_weights, load_weights
from torch_impl.optim import make_optimizer


@contextmanager
def precision(dtype: str) -> Iterator[None]:
    """Within the block PyTorch builds every module and tensor in `dtype` ('float32' or
    'float64': torch.set_default_dtype). Mirrors keras_impl.parity.precision."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def layer_outputs(arch: ArchSpec, input_shape, num_classes: int, weights,
                  x: np.ndarray) -> list[np.ndarray]:
    """The output of each row of common.specs.layer_table for `x` (N, H, W, C), in inference
    mode, from `weights`: NHWC maps and (N, units) vectors; the last is the logits. Mirrors
    keras_impl.parity.layer_outputs."""
    rows = build_layers(arch, input_shape, num_classes)
    model = torch.nn.Sequential(*(m for row in rows for m in row))
    load_weights(model, weights)
    model.eval()
    outputs, h = [], torch.from_numpy(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        for row in rows:
            for module in row:
                h = module(h)
            outputs.append((h.permute(0, 2, 3, 1) if h.ndim == 4 else h).numpy())
    return outputs


def _model(arch: ArchSpec, input_shape, num_classes: int, weights) -> torch.nn.Sequential:
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
    keras_impl.parity.parity_outputs."""
    weights = initial_weights(arch, input_shape, num_classes, seed)
    x = x.astype(dtype)
    with precision(dtype):
        rows = layer_outputs(arch, input_shape, num_classes, weights, x)
        out = {"logits": rows[-1], **{f"activations/{i}": a for i, a in enumerate(rows)}}
        xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
        model = _model(without_dropout(arch), input_shape, num_classes, weights).train()
        for hp in optimizers:
            load_weights(model, weights)  # every optimizer starts from the shared weights
            optimizer = make_optimizer(model.parameters(), exact_hyperparameters(hp, dtype))
            optimizer.zero_grad()
            F.cross_entropy(model(xt), yt).backward()
            optimizer.step()
            for i, layer in enumerate(export_weights(model)):
                key = hp.get("label", hp["name"])  # a label tells optimizers of one name apart
                out.update({f"{key}/{i}/{k}": v for k, v in layer.items()})
    return out


def count_model_params(arch: ArchSpec, input_shape, num_classes: int) -> int:
    """Trainable parameters of the model built from `arch` for (H, W, C) inputs and `num_classes`."""
    return count_params(build_model(arch, input_shape, num_classes))
