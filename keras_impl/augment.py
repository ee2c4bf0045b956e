"""Augmentation layers for Keras from common.augment. Mirrors torch_impl/augment.py.

The layers sit at the front of the model, so they run inside the compiled training step on whole
batches and are inactive at inference (predict / evaluate). On the jax backend, Keras'
RandomTranslation, RandomRotation and RandomZoom (crop, rotate, zoom) opt out of jax.jit: with
any of them, Keras runs the whole training step eagerly (keras_impl.train.setup's facts say so).
"""

from __future__ import annotations

import keras

from common.augment import strength

UNCLIPPED = (-1e9, 1e9)  # inputs are standardised, not pixels: no clipping to [0, 255]


def _layer(name: str, seed: int, input_shape: tuple[int, int, int]) -> keras.layers.Layer:
    h, w, _ = input_shape
    if name == "flip":  # Keras flips with probability 0.5, the registry's value
        return keras.layers.RandomFlip("horizontal", seed=seed)
    if name == "crop":  # pad-and-crop by up to `pad` pixels = a whole-pixel translation
        pad = strength("crop")
        return keras.layers.RandomTranslation(pad / h, pad / w, fill_mode="constant",
                                              interpolation="nearest", seed=seed)
    if name == "grayscale":
        return keras.layers.RandomGrayscale(factor=strength("grayscale"), seed=seed)
    if name == "rotate":
        return keras.layers.RandomRotation(strength("rotate") / 360.0, fill_mode="constant",
                                           interpolation="bilinear", seed=seed)
    if name == "zoom":
        f = strength("zoom")
        return keras.layers.RandomZoom((-f, f), fill_mode="constant", interpolation="bilinear",
                                       seed=seed)
    if name == "contrast":
        return keras.layers.RandomContrast(strength("contrast"), value_range=UNCLIPPED, seed=seed)
    raise ValueError(f"no keras layer for augmentation {name!r}")


def build_augmenter(names: tuple[str, ...], seed: int, input_shape: tuple[int, int, int],
                    device: str) -> list[keras.layers.Layer]:
    """The augmentation layers to put in front of the model (empty when there are none); each
    draws its own parameters per sample, in training only. `device`: Keras places layers itself."""
    return [_layer(name, seed + i, input_shape) for i, name in enumerate(names)]
