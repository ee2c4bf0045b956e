"""PyTorch's twin of keras.applications.ResNet50V2 (torchvision ships no ResNet50V2): the same
graph layer for layer, and the loader of Keras' ImageNet weights into it (converted to plain
arrays by a Keras process: keras_impl.transfer.convert_imagenet_weights). torch_impl.transfer
builds it where common.transfer.Backbone.torch_from_keras is set.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from common.transfer import BACKBONES

# keras.applications' BatchNorm epsilon in ResNet*V2 and DenseNet (torchvision's default: 1e-5)
KERAS_BN_EPSILON = 1.001e-5


def keras_bn(channels: int) -> nn.BatchNorm2d:
    """A BatchNorm2d with Keras' epsilon (1.001e-5), as keras.applications' ResNet50V2 has."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON)


class PreactBottleneck(nn.Module):
    """keras.applications' residual_block_v2 (keras/src/applications/resnet.py), named after its
    Keras layers ('<name>_preact_bn', '_0_conv', '_1_conv', ...): BN-ReLU pre-activation; the
    shortcut is a 1x1 conv of the pre-activation (a stage's first unit, stride 1) or the input
    itself, subsampled by a 1x1 max-pool where the unit has stride 2 (a stage's LAST unit, as in
    Keras; timm's resnetv2 strides the first); 1x1 conv, BN-ReLU, 3x3 conv with the stride
    (zero padding 1 on every side, as Keras' ZeroPadding2D), BN-ReLU, 1x1 conv. The 1x1 convs
    that end a branch have biases, those followed by BatchNorm do not (Keras' use_bias)."""

    def __init__(self, name: str, in_channels: int, filters: int, stride: int,
                 conv_shortcut: bool):
        super().__init__()
        self.keras_name, self.stride = name, stride
        self.preact_bn = keras_bn(in_channels)
        self.conv_0 = (nn.Conv2d(in_channels, 4 * filters, 1, stride) if conv_shortcut
                       else None)
        self.conv_1 = nn.Conv2d(in_channels, filters, 1, bias=False)
        self.bn_1 = keras_bn(filters)
        self.conv_2 = nn.Conv2d(filters, filters, 3, stride, padding=1, bias=False)
        self.bn_2 = keras_bn(filters)
        self.conv_3 = nn.Conv2d(filters, 4 * filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.preact_bn(x))
        if self.conv_0 is not None:
            shortcut = self.conv_0(preact)
        else:  # Keras' MaxPooling2D(1, strides=stride) of the input (not the pre-activation)
            shortcut = F.max_pool2d(x, 1, self.stride) if self.stride > 1 else x
        y = F.relu(self.bn_1(self.conv_1(preact)))
        y = F.relu(self.bn_2(self.conv_2(y)))
        return shortcut + self.conv_3(y)

    def keras_layers(self) -> dict[str, nn.Module]:
        parts = {"preact_bn": self.preact_bn, "0_conv": self.conv_0, "1_conv": self.conv_1,
                 "1_bn": self.bn_1, "2_conv": self.conv_2, "2_bn": self.bn_2,
                 "3_conv": self.conv_3}
        return {f"{self.keras_name}_{k}": m for k, m in parts.items() if m is not None}


class ResNet50V2(nn.Module):
    """keras.applications.ResNet50V2(include_top=False), layer for layer: stem 7x7 stride-2 conv
    with a bias (padding 3) and no BN-ReLU (pre-activation: the units' own BN-ReLU follow), a
    3x3 stride-2 max-pool after zero padding 1 (Keras' ZeroPadding2D: zeros, not -inf; the stem
    output is not ReLU'd, so the padding value matters); stages conv2..conv5 of 3, 4, 6, 3 units
    (the first with a conv shortcut; the last with stride 2, except conv5's); post BN-ReLU."""

    keras_name = "ResNet50V2"
    # (filters, units, last stride) per stage; the units from common.transfer's block table
    STAGES = tuple(zip((64, 128, 256, 512), BACKBONES["resnet50v2"].stages, (2, 2, 2, 1)))

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(3, 64, 7, 2, padding=3), pad=nn.ZeroPad2d(1),
            pool=nn.MaxPool2d(3, 2)))
        units, channels = [], 64
        for stage, (filters, n, stride) in enumerate(self.STAGES, start=2):
            for i in range(1, n + 1):
                units.append(PreactBottleneck(f"conv{stage}_block{i}", channels, filters,
                                              stride if i == n else 1, conv_shortcut=i == 1))
                channels = 4 * filters
        self.units = nn.Sequential(*units)
        self.post_bn = keras_bn(channels)
        self.post_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_relu(self.post_bn(self.units(self.stem(x))))

    def keras_layers(self) -> dict[str, nn.Module]:
        """Keras layer name -> the module holding its weights (load_imagenet_arrays)."""
        layers = {"conv1_conv": self.stem.conv}
        for unit in self.units:
            layers.update(unit.keras_layers())
        return {**layers, "post_bn": self.post_bn}


def load_imagenet_arrays(model: ResNet50V2, path: str) -> None:
    """Keras' weights as keras_impl.transfer.convert_imagenet_weights saved them
    ('<layer>.<weight>', Keras layouts), matched by Keras layer name (`ResNet50V2.keras_layers`),
    every array used and every tensor set: conv kernels (h,w,I,O) -> (O,I,h,w), BatchNorm
    gamma, beta, moving mean and variance -> weight, bias, running_mean, running_var (the same
    epsilon: 1.001e-5)."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    try:
        with np.load(path) as arrays:
            for key in arrays.files:
                layer, _, name = key.rpartition(".")
                layers.setdefault(layer, {})[name] = arrays[key]
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: converted weights unreadable ({type(err).__name__}); delete "
                        "it and rerun compare.py, which converts Keras' weights first") from None
    modules = model.keras_layers()
    if set(layers) != set(modules):
        missing, extra = sorted(set(modules) - set(layers)), sorted(set(layers) - set(modules))
        raise UserError(f"{path}: not Keras' {model.keras_name} (missing {missing[:3]}, "
                        f"unexpected {extra[:3]}); delete it and rerun compare.py")
    with torch.no_grad():
        for name, module in modules.items():
            w = layers[name]
            if isinstance(module, nn.BatchNorm2d):
                pairs = [(module.weight, w["gamma"]), (module.bias, w["beta"]),
                         (module.running_mean, w["moving_mean"]),
                         (module.running_var, w["moving_variance"])]
            else:
                pairs = [(module.weight, w["kernel"].transpose(3, 2, 0, 1))]
                if module.bias is not None:
                    pairs.append((module.bias, w["bias"]))
            if len(pairs) != len(w):  # e.g. a conv bias on one side only
                raise UserError(f"{path}: {name} has {sorted(w)}, the twin's {module}")
            for tensor, value in pairs:
                if tuple(tensor.shape) != value.shape:
                    raise UserError(f"{path}: {name} {value.shape} does not fit the twin's "
                                    f"{tuple(tensor.shape)}")
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
