"""Architectures as data.

Each CNN is defined once here, as an `ArchSpec`; `keras_impl.model` and `torch_impl.model` both
translate the same spec, and every shape is derived from the input shape (never typed by hand).
`layer_table` derives the layer-by-layer output shapes and parameter counts the two frameworks
must reproduce (tests check it against both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from common.errors import UserError

PADDINGS = ("same", "valid")


@dataclass(frozen=True)
class ConvBlock:
    """Convolutions (each conv -> [batch norm] -> ReLU), then optional max-pool and dropout."""

    filters: tuple[int, ...]  # one conv layer per entry
    kernel_size: int = 3
    stride: int = 1  # applied to the block's first conv only, the usual downsampling pattern
    padding: str = "same"  # 'same' or 'valid', with TensorFlow's semantics in both frameworks
    batch_norm: bool = False
    pool: int = 2  # max-pool window and stride after the block; 0 = no pooling
    dropout: float = 0.0  # after the pool; 0 = none


@dataclass(frozen=True)
class ArchSpec:
    """A CNN: conv blocks, flatten, hidden dense layers (ReLU), then a linear classifier.

    `dropout` is applied once, after the first hidden dense layer (where most weights sit).
    The classifier outputs logits; the loss applies the softmax.
    """

    name: str
    blocks: tuple[ConvBlock, ...]
    dense: tuple[int, ...] = ()
    dropout: float = 0.0
    description: str = ""


@dataclass(frozen=True)
class Layer:
    """One row of the derived layer table: what a framework must build, with its shapes."""

    kind: str  # conv | batchnorm | relu | maxpool | dropout | flatten | dense
    out_shape: tuple[int, ...]  # (H, W, C) or (units,)
    params: int = 0  # trainable parameters
    # conv / dense / pool settings; unused fields stay at their defaults
    units: int = 0
    in_units: int = 0
    kernel_size: int = 0
    stride: int = 1
    padding: str = "valid"
    rate: float = 0.0
    bias: bool = True  # convs followed by batch norm have none: BN's beta takes its place


PRESETS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            name="digits_cnn",
            blocks=(ConvBlock(filters=(16, 32)),),
            dense=(64,),
            description="small default for the 8x8 digits: conv16-conv32-pool, dense 64",
        ),
        ArchSpec(
            name="mnist_cnn",
            blocks=(ConvBlock(filters=(32,), padding="valid", pool=0),),
            dense=(128,),
            description="the lab's first MNIST CNN: one conv of 32 3x3 filters, stride 1, "
            "'valid' padding, then dense 128",
        ),
        ArchSpec(
            name="cifar10_cnn",
            blocks=(
                ConvBlock(filters=(32, 64)),
                ConvBlock(filters=(64, 128)),
                ConvBlock(filters=(128, 256)),
            ),
            dense=(256, 64),
            dropout=0.5,
            description="three [conv-relu-conv-relu-maxpool] blocks 32,64|64,128|128,256, "
            "dense 256-64 with one dropout",
        ),
    )
}


def get_preset(name: str) -> ArchSpec:
    if name not in PRESETS:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def parse_filters(text: str) -> tuple[tuple[int, ...], ...]:
    """'32,64/64,128' -> ((32, 64), (64, 128)): '/' separates blocks, ',' convs in a block."""
    try:
        blocks = tuple(tuple(int(f) for f in b.split(",")) for b in text.split("/"))
    except ValueError:
        raise UserError(
            f"--filters {text!r}: expected integers, ',' between convs and '/' between blocks, "
            "e.g. 32,64/64,128"
        ) from None
    if not blocks or any(f <= 0 for b in blocks for f in b):
        raise UserError(f"--filters {text!r}: filter counts must be positive integers")
    return blocks


def customize(
    spec: ArchSpec,
    filters: tuple[tuple[int, ...], ...] | None = None,
    kernel_size: int | None = None,
    dense: tuple[int, ...] | None = None,
    dropout: float | None = None,
    batch_norm: bool | None = None,
) -> ArchSpec:
    """Apply the command-line knobs to a preset. New blocks copy the preset's last block."""
    blocks = list(spec.blocks)
    if filters is not None:
        blocks = [
            replace(blocks[min(i, len(blocks) - 1)], filters=f) for i, f in enumerate(filters)
        ]
    if kernel_size is not None:
        if kernel_size <= 0:
            raise UserError("--kernel-size must be a positive integer")
        blocks = [replace(b, kernel_size=kernel_size) for b in blocks]
    if batch_norm is not None:
        blocks = [replace(b, batch_norm=batch_norm) for b in blocks]
    if dense is not None and any(d <= 0 for d in dense):
        raise UserError("--dense sizes must be positive integers")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise UserError("--dropout must be in [0, 1)")
    return replace(
        spec,
        blocks=tuple(blocks),
        dense=spec.dense if dense is None else tuple(dense),
        dropout=spec.dropout if dropout is None else dropout,
    )


def _conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the odd extra pixel goes after.

    PyTorch's padding='same' refuses stride > 1 and pads symmetrically otherwise, so the torch
    side pads explicitly with these amounts to match Keras exactly.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def layer_table(spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[Layer]:
    """Derive every layer with its output shape (H, W, C) and trainable parameter count."""
    h, w, c = input_shape
    layers: list[Layer] = []
    for bi, block in enumerate(spec.blocks):
        if block.padding not in PADDINGS:
            raise UserError(f"block {bi}: padding must be one of {PADDINGS}")
        for ci, f in enumerate(block.filters):
            stride = block.stride if ci == 0 else 1
            h = _conv_out(h, block.kernel_size, stride, block.padding)
            w = _conv_out(w, block.kernel_size, stride, block.padding)
            if h < 1 or w < 1:
                raise UserError(
                    f"model {spec.name!r} is too deep for {input_shape[0]}x{input_shape[1]} "
                    "inputs (a conv shrinks the image below 1 pixel); use fewer blocks or "
                    "'same' padding"
                )
            # A bias before batch norm is cancelled by the mean subtraction: its true gradient
            # is zero, and adaptive optimizers would turn float noise in it into full steps.
            bias = not block.batch_norm
            params = block.kernel_size**2 * c * f + (f if bias else 0)
            layers.append(
                Layer("conv", (h, w, f), params, units=f, in_units=c,
                      kernel_size=block.kernel_size, stride=stride, padding=block.padding,
                      bias=bias)
            )
            c = f
            if block.batch_norm:
                layers.append(Layer("batchnorm", (h, w, c), 2 * c, units=c))
            layers.append(Layer("relu", (h, w, c)))
        if block.pool:
            h, w = h // block.pool, w // block.pool
            if h < 1 or w < 1:
                raise UserError(
                    f"model {spec.name!r} is too deep for {input_shape[0]}x{input_shape[1]} "
                    "inputs (pooling shrinks the image below 1 pixel); use fewer blocks"
                )
            layers.append(Layer("maxpool", (h, w, c), kernel_size=block.pool, stride=block.pool))
        if block.dropout:
            layers.append(Layer("dropout", (h, w, c), rate=block.dropout))
    units = h * w * c
    layers.append(Layer("flatten", (units,)))
    for di, d in enumerate(spec.dense):
        layers.append(Layer("dense", (d,), units * d + d, units=d, in_units=units))
        layers.append(Layer("relu", (d,)))
        units = d
        if di == 0 and spec.dropout:
            layers.append(Layer("dropout", (d,), rate=spec.dropout))
    layers.append(Layer("dense", (num_classes,), units * num_classes + num_classes,
                        units=num_classes, in_units=units))
    return layers


def count_params(spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> int:
    return sum(layer.params for layer in layer_table(spec, input_shape, num_classes))
