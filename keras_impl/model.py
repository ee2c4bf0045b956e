"""Build a Keras model from a common.specs.ArchSpec and load shared weights into it.

Mirrors torch_impl/model.py. Keras is channels-last; its 'same' padding (convs and pools) and
flatten order are the reference the torch side reproduces.
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np

from common.specs import (ELU_ALPHA, GELU_APPROXIMATE, LEAKY_RELU_SLOPE, ArchSpec, layer_table,
                          same_padding)


class AvgPoolSame(keras.layers.Layer):
    """Average pooling with TensorFlow's asymmetric 'same' padding (the odd pixel after), the
    padding left out of each average: the sum over the zero-padded window divided by the number
    of image pixels in it. The twin of torch_impl.model.AvgPoolSame. Used on the Keras backends
    other than TensorFlow, whose AveragePooling2D(padding="same") averages differently when the
    padding is asymmetric (Keras 3.15 on torch: up to 0.1 on one output for size 3, stride 2 on
    16x16, measured); TensorFlow's own layer is the reference."""

    def __init__(self, size: int, stride: int, pad: tuple[tuple[int, int], tuple[int, int]],
                 **kwargs):
        super().__init__(**kwargs)
        self.size, self.stride, self.pad = size, stride, pad  # pad: ((top, bottom), (left, right))

    def call(self, x):
        widths = ((0, 0), *self.pad, (0, 0))
        total = keras.ops.average_pool(keras.ops.pad(x, widths), self.size, self.stride, "valid")
        ones = keras.ops.ones((1, *x.shape[1:3], 1), dtype=x.dtype)
        inside = keras.ops.average_pool(keras.ops.pad(ones, widths), self.size, self.stride,
                                        "valid")
        return total / inside

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.pad
        h, w = input_shape[1] + top + bottom, input_shape[2] + left + right
        return (input_shape[0], (h - self.size) // self.stride + 1,
                (w - self.size) // self.stride + 1, input_shape[3])


class MaxPoolPadded(keras.layers.Layer):
    """Max pooling with `pad` pixels of -inf on every side (PyTorch's nn.MaxPool2d(padding=p)):
    the padding is never the maximum. Keras' pools pad only for 'same'."""

    def __init__(self, size: int, stride: int, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.size, self.stride, self.pad = size, stride, pad

    def call(self, x):
        widths = ((0, 0), (self.pad, self.pad), (self.pad, self.pad), (0, 0))
        padded = keras.ops.pad(x, widths, constant_values=float("-inf"))
        return keras.ops.max_pool(padded, self.size, self.stride, "valid")

    def compute_output_shape(self, input_shape):
        h, w = (input_shape[i] + 2 * self.pad for i in (1, 2))
        return (input_shape[0], (h - self.size) // self.stride + 1,
                (w - self.size) // self.stride + 1, input_shape[3])


def _pad_first(layer) -> list[keras.layers.Layer]:
    """An integer padding as an explicit ZeroPadding2D before a conv or average pool (which then
    pads 'valid'): PyTorch's zero padding, counted in the average as nn.AvgPool2d's default."""
    return [keras.layers.ZeroPadding2D(layer.padding)] if isinstance(layer.padding, int) else []


def _keras_padding(layer) -> str:
    return "valid" if isinstance(layer.padding, int) else layer.padding


def _avgpool(layer, in_shape: tuple[int, ...]) -> keras.layers.Layer:
    """AveragePooling2D, except asymmetric 'same' padding off TensorFlow (AvgPoolSame)."""
    if isinstance(layer.padding, int):
        return keras.layers.AveragePooling2D(layer.kernel_size, strides=layer.stride,
                                             padding="valid")  # after _pad_first's zeros
    if layer.padding == "same" and keras.backend.backend() != "tensorflow":
        pad = (same_padding(in_shape[0], layer.kernel_size, layer.stride),
               same_padding(in_shape[1], layer.kernel_size, layer.stride))
        if any(before != after for before, after in pad):
            return AvgPoolSame(layer.kernel_size, layer.stride, pad)
    return keras.layers.AveragePooling2D(layer.kernel_size, strides=layer.stride,
                                         padding=layer.padding)


def _activation(name: str) -> keras.layers.Layer:
    """Every parameter explicit: the two frameworks' defaults differ (common.specs)."""
    if name == "relu":
        return keras.layers.ReLU()
    if name == "elu":
        return keras.layers.ELU(alpha=ELU_ALPHA)
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE)
    if name == "tanh":
        return keras.layers.Activation("tanh")
    if name == "sigmoid":
        return keras.layers.Activation("sigmoid")
    if name == "gelu":
        return keras.layers.Activation(partial(keras.activations.gelu,
                                               approximate=GELU_APPROXIMATE))
    raise ValueError(f"keras_impl.model: no activation {name!r}")


def build_layers(arch: ArchSpec, input_shape: tuple[int, int, int],
                 num_classes: int) -> list[list[keras.layers.Layer]]:
    """The Keras layers of each row of common.specs.layer_table (a padding layer and its conv
    or pool make one row), in order. Mirrors torch_impl.model.build_layers."""
    rows: list[list[keras.layers.Layer]] = []
    shape: tuple[int, ...] = input_shape
    for layer in layer_table(arch, input_shape, num_classes):
        layers: list[keras.layers.Layer] = []
        if layer.kind == "conv":
            layers += _pad_first(layer)
            layers.append(keras.layers.Conv2D(layer.units, layer.kernel_size, strides=layer.stride,
                                              padding=_keras_padding(layer), use_bias=layer.bias))
        elif layer.kind == "batchnorm":
            layers.append(keras.layers.BatchNormalization(momentum=layer.momentum,
                                                          epsilon=layer.epsilon))
        elif layer.kind == "activation":
            layers.append(_activation(layer.activation))
        elif layer.kind == "maxpool" and isinstance(layer.padding, int):
            layers.append(MaxPoolPadded(layer.kernel_size, layer.stride, layer.padding))
        elif layer.kind == "maxpool":
            layers.append(keras.layers.MaxPooling2D(layer.kernel_size, strides=layer.stride,
                                                    padding=layer.padding))
        elif layer.kind == "avgpool":
            # 'same': TensorFlow averages over the window's pixels inside the image only
            layers += _pad_first(layer)
            layers.append(_avgpool(layer, shape))
        elif layer.kind == "global_avgpool":
            layers.append(keras.layers.GlobalAveragePooling2D())
        elif layer.kind == "dropout":
            layers.append(keras.layers.Dropout(layer.rate))
        elif layer.kind == "spatial_dropout":
            layers.append(keras.layers.SpatialDropout2D(layer.rate))
        elif layer.kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif layer.kind == "dense":
            layers.append(keras.layers.Dense(layer.units, use_bias=layer.bias))
        else:
            raise ValueError(f"keras_impl.model: no layer for kind {layer.kind!r}")
        rows.append(layers)
        shape = layer.out_shape
    return rows


def build_model(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int,
                front: list | tuple = ()) -> keras.Sequential:
    """`front`: weightless layers placed before the network (augmentation, active in training)."""
    layers = [layer for row in build_layers(arch, input_shape, num_classes) for layer in row]
    return keras.Sequential([keras.Input(shape=input_shape), *front, *layers], name=arch.name)


def load_weights(model: keras.Sequential, weights: list[dict[str, np.ndarray]]) -> None:
    """Load common.init weights (already in Keras layout) into the model."""
    kinds = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)
    layers = [m for m in model.layers if isinstance(m, kinds)]
    if len(layers) != len(weights):
        raise ValueError(f"{len(weights)} weight sets for {len(layers)} weighted layers")
    for layer, w in zip(layers, weights):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"]])
        else:
            layer.set_weights([w["kernel"], w["bias"]] if "bias" in w else [w["kernel"]])


def count_params(model: keras.Model) -> int:
    """Trainable parameters (BatchNorm moving statistics are non-trainable, not counted)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def export_weights(model: keras.Sequential) -> list[dict[str, np.ndarray]]:
    """The inverse of load_weights: the model's weights in Keras layout (for parity checks)."""
    out = []
    for layer in model.layers:
        w = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(dict(zip(("gamma", "beta", "moving_mean", "moving_variance"), w)))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out.append(dict(zip(("kernel", "bias"), w)))
    return out
