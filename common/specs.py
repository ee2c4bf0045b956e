"""Architectures as data: an ordered list of layers, read from a TOML file.

Every network is one `ArchSpec`: the layers of an architecture file (the shipped presets are the
files in `common/presets/`; `--model PATH.toml` reads a student's own), with the classifier (one
dense layer of logits) implied at the end. `keras_impl.model` and `torch_impl.model` both
translate the same ArchSpec; `layer_table` derives every shape and parameter count the two frameworks
must reproduce (tests check it against both), and names the layer and the problem in one line
when the shapes do not work out (the command-line knobs that edit an ArchSpec: common.knobs).
A file looks like this (README, "Model presets"):

    description = "two convs, a pool, one hidden dense layer"
    input = [32, 32, 3]            # height, width, channels (documentation; parity default)

    [[layer]]
    type = "conv"
    filters = 32                   # kernel 3, stride 1, padding "same", activation "relu"

    [[layer]]
    type = "maxpool"               # size 2, stride = size, padding "valid"

    [[layer]]
    type = "flatten"

    [[layer]]
    type = "dense"
    units = 64                     # activation "relu"
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from common.errors import UserError

PADDINGS = ("same", "valid")  # TensorFlow's semantics in both frameworks (see same_padding)
# or an integer: that many pixels on every side, PyTorch's rule (zeros for conv and average
# pooling, which counts them, as nn.AvgPool2d's default count_include_pad=True; -inf for max
# pooling, which never picks them); a pool's padding is at most half its window, as in PyTorch.
ACTIVATIONS = ("relu", "elu", "leaky_relu", "tanh", "sigmoid", "gelu")
LINEAR = "linear"  # a conv or dense layer without activation (e.g. before its batch norm)
# The activations' parameters, passed explicitly to both frameworks because their defaults differ:
LEAKY_RELU_SLOPE = 0.2  # keras.activations.leaky_relu's default; Keras' LeakyReLU layer 0.3, torch 0.01
ELU_ALPHA = 1.0  # the same default in both
GELU_APPROXIMATE = False  # the exact erf form: keras.activations.gelu's default, torch's 'none'

REQUIRED = object()  # marks a key without a default
POOLS = ("maxpool", "avgpool")
_POOL_KEYS = {"size": 2, "stride": None, "padding": "valid"}  # stride None: = size
# type -> {key: default}. The order of the keys is the order the error messages list them in.
LAYER_TYPES: dict[str, dict[str, Any]] = {
    "conv": {"filters": REQUIRED, "kernel": 3, "stride": 1, "padding": "same",
             "activation": "relu", "bias": True},
    "maxpool": _POOL_KEYS,
    "avgpool": _POOL_KEYS,
    # Keras' convention and defaults: moving = momentum * moving + (1 - momentum) * batch; the
    # PyTorch side gets momentum 1 - m (torch weights the batch), the same update exactly.
    "batchnorm": {"momentum": 0.99, "epsilon": 1e-3},
    "dropout": {"rate": REQUIRED},
    "spatial_dropout": {"rate": REQUIRED},  # whole channels: SpatialDropout2D / nn.Dropout2d
    "activation": {"activation": REQUIRED},
    "flatten": {},
    "global_avgpool": {},
    "dense": {"units": REQUIRED, "activation": "relu", "bias": True},
}
FILE_KEYS = ("description", "input", "layer")
PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class LayerSpec:
    """One [[layer]] of an architecture file, its defaults filled in; keys its type does not take
    stay None (LAYER_TYPES says which)."""

    type: str
    filters: int | None = None  # conv: output channels
    units: int | None = None  # dense: outputs
    kernel: int | None = None  # conv: square kernel side
    size: int | None = None  # pools: square window side
    stride: int | None = None  # conv, pools
    padding: str | int | None = None  # conv, pools: 'same', 'valid' or pixels per side
    activation: str | None = None  # conv, dense (or 'linear'), activation
    rate: float | None = None  # dropout, spatial_dropout: fraction zeroed in training
    bias: bool | None = None  # conv, dense: an additive bias (both frameworks' default: true)
    momentum: float | None = None  # batchnorm, Keras' convention (0.99 = PyTorch's 0.01)
    epsilon: float | None = None  # batchnorm: added to the variance


def layer(type: str, **keys: Any) -> LayerSpec:  # noqa: A002  (the file's own key name)
    """A LayerSpec with its type's defaults filled in (no checks: for code, not for files)."""
    defaults = {k: v for k, v in LAYER_TYPES[type].items() if v is not REQUIRED}
    s = LayerSpec(type, **{**defaults, **keys})
    if type in POOLS and s.stride is None:
        s = replace(s, stride=s.size)
    return s


@dataclass(frozen=True)
class ArchSpec:
    """A network: its layers in order, then the implied classifier (logits; the loss applies the
    softmax)."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, int, int] | None = None  # recorded in the file: documentation, and
    # the parity test's default shape; any input the shapes allow works
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> "ArchSpec":
        """The inverse of dataclasses.asdict (records, job files)."""
        shape = data.get("input_shape")
        return cls(name=data["name"], layers=tuple(LayerSpec(**d) for d in data["layers"]),
                   input_shape=None if shape is None else tuple(shape),
                   description=data.get("description", ""))


@dataclass(frozen=True)
class Layer:
    """One row of the derived layer table: what a framework must build, with its shapes."""

    kind: str  # conv | batchnorm | activation | maxpool | avgpool | global_avgpool | dropout |
    # spatial_dropout | flatten | dense
    out_shape: tuple[int, ...]  # (H, W, C) or (units,)
    params: int = 0  # trainable parameters
    # settings of the kinds that use them; unused fields stay at their defaults
    units: int = 0  # conv filters, dense units, batch-norm channels
    in_units: int = 0
    kernel_size: int = 0  # conv kernel or pool window
    stride: int = 1
    padding: str | int = "valid"  # 'same', 'valid' or pixels on every side
    rate: float = 0.0
    activation: str = ""  # kind 'activation': which function
    bias: bool = True  # conv, dense: the file's `bias` (the classifier always has one)
    momentum: float = 0.99  # batchnorm, Keras' convention
    epsilon: float = 1e-3  # batchnorm


# ----------------------------------------------------------------------------- reading files


def _label(s: LayerSpec) -> str:
    """How an error message names a layer: 'conv 64', 'maxpool 2', 'dropout 0.25'."""
    value = {"conv": s.filters, "dense": s.units, "maxpool": s.size,
             "avgpool": s.size, "dropout": s.rate, "spatial_dropout": s.rate,
             "activation": s.activation}.get(s.type)
    if value is None:
        return s.type
    return f"{s.type} {value:g}" if isinstance(value, float) else f"{s.type} {value}"


def _check_value(type_: str, key: str, value: Any) -> str | None:
    """The problem with one key's value, or None."""
    if key in ("filters", "units", "kernel", "size", "stride"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else f"{key} must be a positive integer, got {value!r}"
    if key == "padding":
        ok = value in PADDINGS or (isinstance(value, int) and not isinstance(value, bool)
                                   and value >= 0)
        return None if ok else (f"padding must be one of {', '.join(PADDINGS)} or a number of "
                                f"pixels (0 or more), got {value!r}")
    if key == "bias":
        return None if isinstance(value, bool) else f"bias must be true or false, got {value!r}"
    if key == "momentum":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
        return None if ok else (f"momentum must be a number in [0, 1) in Keras' convention "
                                f"(PyTorch's momentum 0.1 is 0.9 here), got {value!r}")
    if key == "epsilon":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return None if ok else f"epsilon must be a positive number, got {value!r}"
    if key == "activation":
        valid = ACTIVATIONS if type_ == "activation" else (*ACTIVATIONS, LINEAR)
        return None if value in valid else (
            f"activation must be one of {', '.join(valid)}, got {value!r}")
    if key == "rate":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
        return None if ok else f"rate must be a number in [0, 1), got {value!r}"
    raise ValueError(f"common.specs: no check for key {key!r}")


def _layer_from_table(where: str, index: int, table: Any) -> LayerSpec:
    """One [[layer]] table, checked: unknown types, keys and bad values are one line each."""
    if not isinstance(table, dict):
        raise UserError(f"{where}: layer {index}: expected a table with type = ..., got {table!r}")
    type_ = table.get("type")
    if type_ not in LAYER_TYPES:
        problem = "has no type" if type_ is None else f"unknown type {type_!r}"
        raise UserError(f"{where}: layer {index} {problem}; valid types: {', '.join(LAYER_TYPES)}")
    keys = LAYER_TYPES[type_]
    for key in table:
        if key != "type" and key not in keys:
            valid = ", ".join(keys) if keys else "no other keys"
            raise UserError(f"{where}: layer {index} ({type_}): unknown key {key!r}; "
                            f"{type_} takes: {valid}")
    missing = [k for k, v in keys.items() if v is REQUIRED and k not in table]
    if missing:
        raise UserError(f"{where}: layer {index} ({type_}): {missing[0]} is required")
    for key, value in table.items():
        problem = None if key == "type" else _check_value(type_, key, value)
        if problem:
            raise UserError(f"{where}: layer {index} ({type_}): {problem}")
    values = {k: float(v) if k in ("rate", "momentum", "epsilon") else v
              for k, v in table.items() if k != "type"}
    return layer(type_, **values)


def load_arch_file(path: str | Path, name: str | None = None) -> ArchSpec:
    """Read and check an architecture file (the layers' shapes are checked by layer_table, once
    the input size is known). Raises UserError naming the file, the layer and the problem."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"--model {path}: no such file; give a preset ({', '.join(PRESETS)}) "
                        "or an architecture file (.toml)") from None
    except OSError as err:
        raise UserError(f"--model {path}: cannot read it ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:  # its text names the line and column
        raise UserError(f"{path}: TOML syntax error: {err}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file (an architecture file is TOML)") from None
    unknown = [k for k in data if k not in FILE_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r}; valid keys: {', '.join(FILE_KEYS)}")
    tables = data.get("layer")
    if not isinstance(tables, list):
        raise UserError(f"{path}: no layers: add [[layer]] tables, each with type = ... "
                        f"({', '.join(LAYER_TYPES)})")
    shape = data.get("input")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise UserError(f"{path}: input must be [height, width, channels], positive integers; "
                        f"got {shape!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{path}: description must be a string")
    return ArchSpec(name=name or path.stem,
                    layers=tuple(_layer_from_table(str(path), i + 1, t) for i, t in enumerate(tables)),
                    input_shape=None if shape is None else tuple(shape),
                    description=description)


# ----------------------------------------------------------------------------- the registry


class _Presets(Mapping):
    """name -> ArchSpec for every common/presets/*.toml (sorted by name), read on first use."""

    @staticmethod
    @cache
    def _load() -> dict[str, ArchSpec]:
        return {p.stem: load_arch_file(p) for p in sorted(PRESET_DIR.glob("*.toml"))}

    def __getitem__(self, name: str) -> ArchSpec:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


PRESETS: Mapping[str, ArchSpec] = _Presets()


def get_preset(name: str) -> ArchSpec:
    """The preset architecture `name` (common.specs.PRESETS). Raises UserError naming the presets
    for an unknown name."""
    if name not in PRESETS:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(PRESETS)}, or give "
                        "the path of an architecture file (.toml)")
    return PRESETS[name]


def is_arch_file(model: str) -> bool:
    """--model names a file (not a preset) when it looks like a path."""
    return model.endswith(".toml") or "/" in model or "\\" in model


def get_arch(model: str) -> ArchSpec:
    """--model: a preset name or the path of an architecture file."""
    return load_arch_file(Path(model).expanduser()) if is_arch_file(model) else get_preset(model)


# ----------------------------------------------------------------------------- shapes


def _conv_out(size: int, kernel: int, stride: int, padding: str | int) -> int:
    """Output size; `size` already includes an integer padding."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the odd extra pixel goes after.

    PyTorch's padding='same' refuses stride > 1 and pads symmetrically otherwise (and its pools
    have no 'same'), so the torch side pads explicitly with these amounts to match Keras exactly.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def layer_table(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[Layer]:
    """Derive every layer with its output shape ((H, W, C) or (units,)) and trainable parameter
    count, the classifier last. A layer the shapes do not allow raises one line naming it."""
    shape: tuple[int, ...] = tuple(input_shape)
    rows: list[Layer] = []
    where = f"model {arch.name!r} on {_shape_text(shape)} inputs"
    layers = arch.layers
    for i, s in enumerate(layers):
        name = f"layer {i + 1} ({_label(s)})"

        def fail(problem: str) -> UserError:
            return UserError(f"{where}: {name}: {problem}")

        is_map = len(shape) == 3
        if s.type in ("flatten", "global_avgpool") and not is_map:
            raise fail(f"input is already a vector (of {shape[0]})")
        if s.type in ("conv", *POOLS) and not is_map:
            raise fail(f"input is a vector of {shape[0]} (after a flatten); {s.type} needs a map")
        if s.type == "dense" and is_map:
            raise fail(f"input is a {_shape_text(shape)} map; put a flatten or global_avgpool "
                       "before the first dense layer")
        # The file's `bias` (default true, as in both frameworks). A bias directly before batch
        # norm is cancelled by its mean subtraction, so presets and --batch-norm say bias = false
        # there; a student's file that keeps it trains the same network as the student's.
        bias = s.bias is not False
        if s.type in ("conv", *POOLS):
            window = s.kernel if s.type == "conv" else s.size
            h, w, c = shape
            if isinstance(s.padding, int):
                if s.type in POOLS and s.padding > window // 2:
                    raise fail(f"padding {s.padding} is more than half the {window}x{window} "
                               "window (PyTorch refuses it: the pool would see only padding)")
                h, w = h + 2 * s.padding, w + 2 * s.padding
            if s.padding != "same" and (h < window or w < window):
                what = "kernel" if s.type == "conv" else "window"
                raise fail(f"input {h}x{w} is smaller than the {window}x{window} {what} (the "
                           "model is too deep for this input size; use 'same' padding, fewer "
                           "layers or larger images)")
            h, w = (_conv_out(d, window, s.stride, s.padding) for d in (h, w))
            if s.type == "conv":
                shape = (h, w, s.filters)
                params = window * window * c * s.filters + (s.filters if bias else 0)
                rows.append(Layer("conv", shape, params, units=s.filters, in_units=c,
                                  kernel_size=window, stride=s.stride, padding=s.padding,
                                  bias=bias))
            else:
                shape = (h, w, c)
                rows.append(Layer(s.type, shape, kernel_size=window, stride=s.stride,
                                  padding=s.padding))
        elif s.type == "dense":
            params = shape[0] * s.units + (s.units if bias else 0)
            rows.append(Layer("dense", (s.units,), params, units=s.units, in_units=shape[0],
                              bias=bias))
            shape = (s.units,)
        elif s.type == "batchnorm":
            rows.append(Layer("batchnorm", shape, 2 * shape[-1], units=shape[-1],
                              momentum=0.99 if s.momentum is None else s.momentum,
                              epsilon=1e-3 if s.epsilon is None else s.epsilon))
        elif s.type == "dropout":
            rows.append(Layer("dropout", shape, rate=s.rate))
        elif s.type == "spatial_dropout":
            if not is_map:
                raise fail(f"input is a vector of {shape[0]}; spatial_dropout drops whole "
                           "channels of a map (use dropout after a flatten)")
            rows.append(Layer("spatial_dropout", shape, rate=s.rate))
        elif s.type == "activation":
            pass  # appended below, like a conv's or dense layer's own activation
        elif s.type == "flatten":
            shape = (math.prod(shape),)
            rows.append(Layer("flatten", shape))
        elif s.type == "global_avgpool":
            shape = (shape[-1],)
            rows.append(Layer("global_avgpool", shape))
        else:
            raise ValueError(f"common.specs: no shape rule for layer type {s.type!r}")
        if s.type in ("conv", "dense", "activation") and s.activation != LINEAR:
            rows.append(Layer("activation", shape, activation=s.activation))
    if len(shape) != 1:
        raise UserError(f"{where}: the classifier needs a vector, but the last layer gives a "
                        f"{_shape_text(shape)} map; end the layers with flatten or "
                        "global_avgpool (then any dense layers)")
    rows.append(Layer("dense", (num_classes,), shape[0] * num_classes + num_classes,
                      units=num_classes, in_units=shape[0]))
    return rows


def count_params(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Trainable parameters of `arch` on (H, W, C) inputs with `num_classes` outputs, classifier
    included (the sum of layer_table's rows). Raises UserError as layer_table does."""
    return sum(row.params for row in layer_table(arch, input_shape, num_classes))


def forward_flops(arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> int:
    """Floating-point operations of one image's forward pass in its convolutions and dense
    layers (2 per multiply-add; pools, batch norm and activations are left out: under 2% for
    the presets). A training step costs about 3x this (forward, input and weight gradients)."""
    return sum(2 * math.prod(row.out_shape[:2]) * row.kernel_size ** 2 * row.in_units * row.units
               if row.kind == "conv" else 2 * row.in_units * row.units
               for row in layer_table(arch, input_shape, num_classes)
               if row.kind in ("conv", "dense"))
