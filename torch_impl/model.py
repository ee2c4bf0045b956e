"""Build a PyTorch model from a common.specs.ArchSpec and load shared weights into it.

Mirrors keras_impl/model.py. Two translations keep the models identical to the Keras ones:
'same' padding uses TensorFlow's rule (the odd pixel after, also for stride > 1; max-pooling pads
with -inf, average-pooling leaves the padding out of the average), and the flatten reads NHWC
order, so the dense layer after it has the same weight layout as in Keras.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.specs import (ELU_ALPHA, GELU_APPROXIMATE, LEAKY_RELU_SLOPE, ArchSpec, layer_table,
                          same_padding)

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)  # after a dense layer / on a feature map


class FlattenHWC(nn.Module):
    """Flatten (N, C, H, W) in Keras' (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): keras.layers.GlobalAveragePooling2D."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class AvgPoolSame(nn.Module):
    """Average pooling with TensorFlow's asymmetric 'same' padding, the padding left out of each
    average (nn.AvgPool2d's count_include_pad=False takes symmetric padding only): the sum over
    the zero-padded window divided by the number of image pixels in it."""

    def __init__(self, size: int, stride: int, pad: tuple[int, int, int, int]):
        super().__init__()
        self.size, self.stride, self.pad = size, stride, pad  # pad: (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.avg_pool2d(F.pad(x, self.pad), self.size, self.stride)
        ones = x.new_ones((1, 1, *x.shape[2:]))
        inside = F.avg_pool2d(F.pad(ones, self.pad), self.size, self.stride)
        return total / inside


def _activation(name: str) -> nn.Module:
    """Every parameter explicit: the two frameworks' defaults differ (common.specs)."""
    if name == "relu":
        return nn.ReLU()
    if name == "elu":
        return nn.ELU(alpha=ELU_ALPHA)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "gelu":
        return nn.GELU(approximate="tanh" if GELU_APPROXIMATE else "none")
    raise ValueError(f"torch_impl.model: no activation {name!r}")


def _same_pad(in_shape: tuple[int, ...], layer) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of TensorFlow's padding; zeros for 'valid'; an integer padding
    on every side."""
    if layer.padding == "valid":
        return 0, 0, 0, 0
    if isinstance(layer.padding, int):
        return (layer.padding,) * 4
    top, bottom = same_padding(in_shape[0], layer.kernel_size, layer.stride)
    left, right = same_padding(in_shape[1], layer.kernel_size, layer.stride)
    return left, right, top, bottom


def _conv(in_shape: tuple[int, ...], layer) -> list[nn.Module]:
    k, s = layer.kernel_size, layer.stride
    left, right, top, bottom = _same_pad(in_shape, layer)
    if top == bottom and left == right:
        return [nn.Conv2d(layer.in_units, layer.units, k, stride=s, padding=(top, left),
                          bias=layer.bias)]
    return [nn.ZeroPad2d((left, right, top, bottom)),
            nn.Conv2d(layer.in_units, layer.units, k, stride=s, bias=layer.bias)]


def _pool(in_shape: tuple[int, ...], layer) -> list[nn.Module]:
    """Symmetric padding fits in the pool itself (at most half the window, as TensorFlow's
    amounts always are); asymmetric needs an explicit pad: -inf for max, left out for average."""
    k, s = layer.kernel_size, layer.stride
    left, right, top, bottom = pad = _same_pad(in_shape, layer)
    symmetric = top == bottom and left == right
    if layer.kind == "maxpool":
        if symmetric:  # MaxPool2d's own padding is -inf
            return [nn.MaxPool2d(k, stride=s, padding=(top, left))]
        return [nn.ConstantPad2d(pad, float("-inf")), nn.MaxPool2d(k, stride=s)]
    if layer.kind == "avgpool" and isinstance(layer.padding, int):  # PyTorch's own rule
        return [nn.AvgPool2d(k, stride=s, padding=layer.padding, count_include_pad=True)]
    if layer.kind == "avgpool":
        if symmetric:
            return [nn.AvgPool2d(k, stride=s, padding=(top, left), count_include_pad=False)]
        return [AvgPoolSame(k, s, pad)]
    raise ValueError(f"torch_impl.model: no pool for kind {layer.kind!r}")


def build_layers(arch: ArchSpec, input_shape: tuple[int, int, int],
                 num_classes: int) -> list[list[nn.Module]]:
    """The modules of each row of common.specs.layer_table (a padding module and its conv or
    pool make one row), in order. Mirrors keras_impl.model.build_layers."""
    rows: list[list[nn.Module]] = []
    shape: tuple[int, ...] = input_shape
    for layer in layer_table(arch, input_shape, num_classes):
        modules: list[nn.Module] = []
        if layer.kind == "conv":
            modules += _conv(shape, layer)
        elif layer.kind == "batchnorm":
            norm = nn.BatchNorm2d if len(layer.out_shape) == 3 else nn.BatchNorm1d
            # Keras' momentum m weights the old statistics; PyTorch's weights the batch: 1 - m
            modules.append(norm(layer.units, eps=layer.epsilon, momentum=1 - layer.momentum))
        elif layer.kind == "activation":
            modules.append(_activation(layer.activation))
        elif layer.kind == "maxpool":
            modules += _pool(shape, layer)
        elif layer.kind == "avgpool":
            modules += _pool(shape, layer)
        elif layer.kind == "global_avgpool":
            modules.append(GlobalAvgPool())
        elif layer.kind == "dropout":
            modules.append(nn.Dropout(layer.rate))
        elif layer.kind == "spatial_dropout":  # whole channels, as SpatialDropout2D
            modules.append(nn.Dropout2d(layer.rate))
        elif layer.kind == "flatten":
            modules.append(FlattenHWC())
        elif layer.kind == "dense":
            modules.append(nn.Linear(layer.in_units, layer.units, bias=layer.bias))
        else:
            raise ValueError(f"torch_impl.model: no module for kind {layer.kind!r}")
        rows.append(modules)
        shape = layer.out_shape
    return rows


def build_model(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int,
                front: list | tuple = ()) -> nn.Sequential:
    """`front`: weightless modules placed before the network (augmentation, active in training)."""
    modules = [module for row in build_layers(arch, input_shape, num_classes) for module in row]
    return nn.Sequential(*front, *modules)


def load_weights(model: nn.Sequential, weights: list[dict[str, np.ndarray]]) -> None:
    """Load common.init weights (Keras layout) into the model, converting layouts."""
    layers = [m for m in model if isinstance(m, (nn.Conv2d, *BATCH_NORMS, nn.Linear))]
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
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(w["bias"]))
            else:
                module.weight.copy_(torch.from_numpy(w["gamma"]))
                module.bias.copy_(torch.from_numpy(w["beta"]))
                module.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
                module.running_var.copy_(torch.from_numpy(w["moving_variance"]))


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm moving statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _array(t: torch.Tensor) -> np.ndarray:
    """A copy: .numpy() of a CPU tensor shares its memory, and the parity check reloads weights
    into the same model after exporting them."""
    return t.detach().cpu().numpy().copy()


def export_weights(model: nn.Sequential) -> list[dict[str, np.ndarray]]:
    """The inverse of load_weights: the model's weights in Keras layout (for parity checks)."""
    out = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            out.append({"kernel": _array(m.weight).transpose(2, 3, 1, 0)})
            if m.bias is not None:
                out[-1]["bias"] = _array(m.bias)
        elif isinstance(m, nn.Linear):
            out.append({"kernel": _array(m.weight).T})
            if m.bias is not None:
                out[-1]["bias"] = _array(m.bias)
        elif isinstance(m, BATCH_NORMS):
            out.append({"gamma": _array(m.weight), "beta": _array(m.bias),
                        "moving_mean": _array(m.running_mean),
                        "moving_variance": _array(m.running_var)})
    return out
