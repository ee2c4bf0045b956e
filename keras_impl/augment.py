"""Augmentation layers for Keras from common.augment. Mirrors torch_impl/augment.py.

The layers sit at the front of the model, so they run inside the compiled training step on whole
batches and are inactive at inference (predict / evaluate). On the jax backend, Keras'
RandomTranslation, RandomRotation and RandomZoom (crop, rotate, zoom) opt out of jax.jit: with
any of them, Keras runs the whole training step eagerly (keras_impl.train.setup's facts say so).
"""

from __future__ import annotations

import keras

from common.augment import augment_item

UNCLIPPED = (-1e9, 1e9)  # inputs are standardised, not pixels: no clipping to [0, 255]


class RandomFlipP(keras.layers.Layer):
    """Horizontal flip of each image with probability p, in training only (Keras' RandomFlip
    always flips with probability 0.5)."""

    def __init__(self, p: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.p = p
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        draw = keras.random.uniform((keras.ops.shape(x)[0], 1, 1, 1), seed=self.seed_generator)
        return keras.ops.where(draw < self.p, keras.ops.flip(x, axis=2), x)

    def compute_output_shape(self, input_shape):
        return input_shape


def _layer(item: str, seed: int, input_shape: tuple[int, int, int]) -> keras.layers.Layer:
    name, value = augment_item(item)
    h, w, _ = input_shape
    if name == "flip":
        return RandomFlipP(value, seed)
    if name == "crop":  # pad-and-crop by up to `pad` pixels = a whole-pixel translation
        return keras.layers.RandomTranslation(value / h, value / w, fill_mode="constant",
                                              interpolation="nearest", seed=seed)
    if name == "shift":  # a fraction of the size, bilinear
        return keras.layers.RandomTranslation(value, value, fill_mode="constant",
                                              interpolation="bilinear", seed=seed)
    if name == "grayscale":
        return keras.layers.RandomGrayscale(factor=value, seed=seed)
    if name == "rotate":
        return keras.layers.RandomRotation(value / 360.0, fill_mode="constant",
                                           interpolation="bilinear", seed=seed)
    if name == "zoom":
        return keras.layers.RandomZoom((-value, value), fill_mode="constant",
                                       interpolation="bilinear", seed=seed)
    if name == "contrast":
        return keras.layers.RandomContrast(value, value_range=UNCLIPPED, seed=seed)
    raise ValueError(f"no keras layer for augmentation {name!r}")


def build_augmenter(names: tuple[str, ...], seed: int, input_shape: tuple[int, int, int],
                    device: str) -> list[keras.layers.Layer]:
    """The augmentation layers to put in front of the model (empty when there are none); each
    draws its own parameters per sample, in training only. `device`: Keras places layers itself."""
    return [_layer(item, seed + i, input_shape) for i, item in enumerate(names)]
