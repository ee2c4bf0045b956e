"""What a study varies: the sweepable settings (typed like their compare.py flags, read back from
a record's config, printed for tables and file names), `KEY=V1,V2,...` parsed into a Study, its
cartesian product and each point's name. Pure: no I/O, no framework; common.plan resolves a
study's points with it, common.studies runs them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

from common.config import RunConfig
from common.errors import UserError
from common.knobs import conv_batch_norm, conv_filters, conv_kernel, dense_dropout, hidden_dense
from common.optim import OPTIMIZERS

# ---------------------------------------------------------------------------------------------
# Sweepable settings: how a value is typed, what compare.py's flag holds, how to read it back
# from a record's config (tables are built from records), and how to print it.
# ---------------------------------------------------------------------------------------------


def _number(text: str, kind: type, ok: Callable[[Any], bool], rule: str) -> Any:
    """`kind(text)` if it converts and passes `ok`; else ValueError('must be ...')."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"must be {rule}") from None
    if not ok(value):
        raise ValueError(f"must be {rule}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def _fraction(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def _seed(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def _optimizer(text: str) -> str:
    if text not in OPTIMIZERS:
        raise ValueError(f"must be one of {', '.join(OPTIMIZERS)}")
    return text


def _bool(text: str) -> bool:
    words = {"true": True, "on": True, "yes": True, "1": True,
             "false": False, "off": False, "no": False, "0": False}
    if text.lower() not in words:
        raise ValueError("must be true or false")
    return words[text.lower()]


# Inside one value, '-' stands where the flag itself takes ',' (',' separates the values).
def _dense(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(v) for v in text.split("-"))


def _filters(text: str) -> str:
    """'16-32/64' -> '16,32/64', the form --filters takes (config_from_args parses it)."""
    for block in text.split("/"):
        for f in block.split("-"):
            _positive_int(f)
    return text.replace("-", ",")


def _float_label(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"  # None: momentum of a non-SGD optimizer


@dataclass(frozen=True)
class Setting:
    """One sweepable training setting, named like its compare.py flag (without the dashes)."""

    parse: Callable[[str], Any]  # one typed value -> what the flag's argparse attribute holds
    read: Callable[[RunConfig], Any]  # a record's resolved config -> the same value
    label: Callable[[Any], str] = str  # for tables, file names and plots
    numeric: bool = False  # plotted on a numeric x-axis
    log_axis: bool = False


SETTINGS: dict[str, Setting] = {
    "optimizer": Setting(_optimizer, lambda c: c.optimizer["name"]),
    "lr": Setting(_positive_float, lambda c: c.optimizer["lr"], _float_label, True, True),
    "momentum": Setting(_fraction, lambda c: c.optimizer.get("momentum"), _float_label, True),
    "batch_size": Setting(_positive_int, lambda c: c.batch_size, numeric=True),
    "epochs": Setting(_positive_int, lambda c: c.epochs, numeric=True),
    "seed": Setting(_seed, lambda c: c.seed, numeric=True),
    "train_size": Setting(_positive_int, lambda c: c.train_size, numeric=True),
    # the model knobs, read back through common.specs' view of the layer list
    "dropout": Setting(_fraction, lambda c: dense_dropout(c.arch), _float_label, True),
    "kernel_size": Setting(_positive_int, lambda c: conv_kernel(c.arch), numeric=True),
    "dense": Setting(_dense, lambda c: hidden_dense(c.arch), lambda v: "-".join(str(d) for d in v)),
    "filters": Setting(_filters, lambda c: "/".join(",".join(str(f) for f in group)
                                                    for group in conv_filters(c.arch)),
                       lambda v: v.replace(",", "-")),
    "batch_norm": Setting(_bool, lambda c: conv_batch_norm(c.arch), lambda v: "on" if v else "off"),
}
# GridSearchCV cross-validates every grid point on the same data: the training set size is a
# property of the data, not of the estimator, so only a sweep may vary it.
GRID_KEYS = tuple(k for k in SETTINGS if k != "train_size")
SWEEP_KEYS = tuple(SETTINGS)

Study = dict[str, tuple]  # setting -> its values, in the order given


def parse_study(given: list[str], kind: str) -> Study:
    """['lr=0.1,0.01', 'batch_size=32,64'] -> {'lr': (0.1, 0.01), 'batch_size': (32, 64)}."""
    valid = GRID_KEYS if kind == "grid" else SWEEP_KEYS
    hint = f"valid keys: {', '.join(valid)}"
    study: Study = {}
    for setting in given:
        key, sep, values = setting.partition("=")
        key = key.strip().replace("-", "_")  # --sweep batch-size=... reads like the flag
        if not sep or not key or not values:
            raise UserError(f"--{kind} {setting!r}: expected KEY=V1,V2,... ({hint})")
        if key not in valid:
            extra = (" (a grid cross-validates on fixed data; use --sweep)"
                     if key in SETTINGS else "")
            raise UserError(f"--{kind}: unknown key {key!r}{extra}; {hint}")
        if key in study:
            raise UserError(f"--{kind}: {key} is given twice; list all its values once ({hint})")
        parsed = []
        for text in values.split(","):
            try:
                value = SETTINGS[key].parse(text.strip())
            except ValueError as err:
                raise UserError(f"--{kind} {key}: {text.strip()!r}: {err} ({hint})") from None
            if value in parsed:
                raise UserError(f"--{kind} {key}: {text.strip()!r} is listed twice ({hint})")
            parsed.append(value)
        study[key] = tuple(parsed)
    return study


def product(study: Study) -> list[dict[str, Any]]:
    """Every combination, the first key varying slowest (the order of the table's rows)."""
    keys = list(study)
    return [dict(zip(keys, values)) for values in itertools.product(*study.values())]


def _exact(key: str, value: Any) -> str:
    """A value as a file-name-safe string that tells any two distinct values apart (floats by
    repr: 0.1 and 0.1000001 print alike with %g)."""
    text = repr(value) if isinstance(value, float) else SETTINGS[key].label(value)
    return "".join(ch if ch.isalnum() or ch in ".+-" else "." for ch in text)


def point_name(point: dict[str, Any]) -> str:
    """File-name-safe and unique per configuration: 'lr-0.01_batch_size-64'."""
    return "_".join(f"{key}-{_exact(key, value)}" for key, value in point.items()) or "base"


def labels(keys, config: RunConfig) -> dict[str, str]:
    """A configuration's values of the study's settings, as the tables print them."""
    return {k: SETTINGS[k].label(SETTINGS[k].read(config)) for k in keys}
