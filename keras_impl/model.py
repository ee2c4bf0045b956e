"""Build a Keras model from a common.specs.ArchSpec and load shared weights into it.

Mirrors torch_impl/model.py. Keras is channels-last; its 'same' padding (convs and pools) and
flatten order are the reference the torch side reproduces.
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np

from common.init import BN_EPSILON, BN_MOMENTUM
from common.specs import ELU_ALPHA, GELU_APPROXIMATE, LEAKY_RELU_SLOPE, ArchSpec, layer_table


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


def build_model(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int,
                front: list | tuple = ()) -> keras.Sequential:
    """`front`: weightless layers placed before the network (augmentation, active in training)."""
    layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape), *front]
    for layer in layer_table(arch, input_shape, num_classes):
        if layer.kind == "conv":
            layers.append(keras.layers.Conv2D(layer.units, layer.kernel_size, strides=layer.stride,
                                              padding=layer.padding, use_bias=layer.bias))
        elif layer.kind == "batchnorm":
            layers.append(keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON))
        elif layer.kind == "activation":
            layers.append(_activation(layer.activation))
        elif layer.kind == "maxpool":
            layers.append(keras.layers.MaxPooling2D(layer.kernel_size, strides=layer.stride,
                                                    padding=layer.padding))
        elif layer.kind == "avgpool":
            # 'same': TensorFlow averages over the window's pixels inside the image only
            layers.append(keras.layers.AveragePooling2D(layer.kernel_size, strides=layer.stride,
                                                        padding=layer.padding))
        elif layer.kind == "global_avgpool":
            layers.append(keras.layers.GlobalAveragePooling2D())
        elif layer.kind == "dropout":
            layers.append(keras.layers.Dropout(layer.rate))
        elif layer.kind == "flatten":
            layers.append(keras.layers.Flatten())
        elif layer.kind == "dense":
            layers.append(keras.layers.Dense(layer.units, use_bias=layer.bias))
        else:
            raise ValueError(f"keras_impl.model: no layer for kind {layer.kind!r}")
    return keras.Sequential(layers, name=arch.name)


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
