"""Build a PyTorch model from a common.specs.ArchSpec and load shared weights into it.

Mirrors keras_impl/model.py. Two translations keep the models identical to the Keras ones:
'same' padding uses TensorFlow's rule (the odd pixel after, also for stride > 1), and the flatten
reads NHWC order, so the dense layer after it has the same weight layout as in Keras.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.init import BN_EPSILON, BN_MOMENTUM
from common.specs import ArchSpec, layer_table, same_padding


class FlattenHWC(nn.Module):
    """Flatten (N, C, H, W) in Keras' (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def _conv(in_shape: tuple[int, ...], layer) -> list[nn.Module]:
    k, s = layer.kernel_size, layer.stride
    if layer.padding == "valid":
        return [nn.Conv2d(layer.in_units, layer.units, k, stride=s, bias=layer.bias)]
    top, bottom = same_padding(in_shape[0], k, s)
    left, right = same_padding(in_shape[1], k, s)
    if top == bottom and left == right:
        return [nn.Conv2d(layer.in_units, layer.units, k, stride=s, padding=(top, left),
                          bias=layer.bias)]
    return [nn.ZeroPad2d((left, right, top, bottom)),
            nn.Conv2d(layer.in_units, layer.units, k, stride=s, bias=layer.bias)]


def build_model(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int,
                front: list | tuple = ()) -> nn.Sequential:
    """`front`: weightless modules placed before the network (augmentation, active in training)."""
    modules: list[nn.Module] = list(front)
    shape: tuple[int, ...] = input_shape
    for layer in layer_table(arch, input_shape, num_classes):
        if layer.kind == "conv":
            modules += _conv(shape, layer)
        elif layer.kind == "batchnorm":
            modules.append(nn.BatchNorm2d(layer.units, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM))
        elif layer.kind == "relu":
            modules.append(nn.ReLU())
        elif layer.kind == "maxpool":
            modules.append(nn.MaxPool2d(layer.kernel_size, stride=layer.stride))
        elif layer.kind == "dropout":
            modules.append(nn.Dropout(layer.rate))
        elif layer.kind == "flatten":
            modules.append(FlattenHWC())
        elif layer.kind == "dense":
            modules.append(nn.Linear(layer.in_units, layer.units))
        else:
            raise ValueError(f"torch_impl.model: no module for kind {layer.kind!r}")
        shape = layer.out_shape
    return nn.Sequential(*modules)


def load_weights(model: nn.Sequential, weights: list[dict[str, np.ndarray]]) -> None:
    """Load common.init weights (Keras layout) into the model, converting layouts."""
    layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    if len(layers) != len(weights):
        raise ValueError(f"{len(weights)} weight sets for {len(layers)} weighted layers")
    with torch.no_grad():
        for module, w in zip(layers, weights):
            if isinstance(module, nn.Conv2d):  # HWIO -> OIHW
                module.weight.copy_(torch.from_numpy(w["kernel"].transpose(3, 2, 0, 1)))
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(w["bias"]))
            elif isinstance(module, nn.Linear):  # (in, out) -> (out, in)
                module.weight.copy_(torch.from_numpy(w["kernel"].T))
                module.bias.copy_(torch.from_numpy(w["bias"]))
            else:
                module.weight.copy_(torch.from_numpy(w["gamma"]))
                module.bias.copy_(torch.from_numpy(w["beta"]))
                module.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
                module.running_var.copy_(torch.from_numpy(w["moving_variance"]))


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm moving statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def export_weights(model: nn.Sequential) -> list[dict[str, np.ndarray]]:
    """The inverse of load_weights: the model's weights in Keras layout (for parity checks)."""
    out = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            out.append({"kernel": m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)})
            if m.bias is not None:
                out[-1]["bias"] = m.bias.detach().cpu().numpy()
        elif isinstance(m, nn.Linear):
            out.append({"kernel": m.weight.detach().cpu().numpy().T,
                        "bias": m.bias.detach().cpu().numpy()})
        elif isinstance(m, nn.BatchNorm2d):
            out.append({"gamma": m.weight.detach().cpu().numpy(),
                        "beta": m.bias.detach().cpu().numpy(),
                        "moving_mean": m.running_mean.cpu().numpy(),
                        "moving_variance": m.running_var.cpu().numpy()})
    return out
