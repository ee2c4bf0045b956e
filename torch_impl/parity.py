"""PyTorch half of the parity check (see common/parity.py; common.worker runs it). Mirrors
keras_impl/parity.py.

The one training step is the training loop's: the loss's gradients, then the optimizer's step
(keras_impl/parity.py explains why that side takes its step eagerly too).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from common.init import initial_weights
from common.parity import without_dropout
from common.specs import ArchSpec
from torch_impl.model import build_model, count_params, export_weights, load_weights
from torch_impl.optim import make_optimizer


def _model(arch: ArchSpec, input_shape, num_classes: int, weights) -> torch.nn.Sequential:
    model = build_model(arch, input_shape, num_classes)
    load_weights(model, weights)
    return model


def parity_outputs(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int,
                   x: np.ndarray, y: np.ndarray, optimizers: list[dict]) -> dict[str, np.ndarray]:
    """From the shared initial weights of `arch` (common.init): the logits of `x` (N, H, W, C)
    float32 in inference mode, and per optimizer of `optimizers` the weights after one training
    step on (x, int64 labels `y`), as named arrays (common.parity.compare_outputs reads them).
    Mirrors keras_impl.parity.parity_outputs."""
    weights = initial_weights(arch, input_shape, num_classes, seed)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
    model = _model(arch, input_shape, num_classes, weights).eval()
    with torch.no_grad():
        out = {"logits": model(xt).numpy()}
    model = _model(without_dropout(arch), input_shape, num_classes, weights).train()
    for hp in optimizers:
        load_weights(model, weights)  # every optimizer starts from the shared weights
        optimizer = make_optimizer(model.parameters(), hp)
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
