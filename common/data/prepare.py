"""Input preparation, in a framework process: a task's data loaded, split and standardised into
the float32 NHWC arrays both frameworks train on (`prepare_data` -> `PreparedData`).

Imports no framework and no slow library at import time (common.tasks loads scikit-learn only
for the digits task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from common.errors import UserError
from common.splits import make_split
from common.tasks import load_dataset

if TYPE_CHECKING:
    from common.config import RunConfig


@dataclass(frozen=True)
class PreparedData:
    """Float32 NHWC arrays, standardised per channel, split, ready to feed in memory."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    split_hash: str
    channel_mean: tuple[float, ...] = ()  # of the training split, in [0, 1] units
    channel_std: tuple[float, ...] = ()
    constant_channels: tuple[int, ...] = ()  # centred only: their std was ~0 (standardisation)


# A channel whose standard deviation is below half a grey level (in [0, 1] units) is constant in
# practice: dividing by it would turn rounding noise into huge inputs, and by 0 into NaN. Such a
# channel is only centred (divided by 1), the rule of scikit-learn's StandardScaler for
# near-constant features (sklearn.preprocessing._data._handle_zeros_in_scale), stated in the record.
CONSTANT_CHANNEL_STD = 0.5 / 255.0


def standardisation(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Per-channel (mean, std, constant channels) of uint8 images `train` (N, H, W, C), in [0, 1]
    units, float64. A constant channel (std < CONSTANT_CHANNEL_STD) gets std 1."""
    mean = train.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
    std = train.std(axis=(0, 1, 2), dtype=np.float64) / 255.0
    constant = tuple(int(c) for c in np.flatnonzero(~(std >= CONSTANT_CHANNEL_STD)))
    std = np.where(std >= CONSTANT_CHANNEL_STD, std, 1.0)
    return mean, std, constant


def check_finite(splits: dict[str, np.ndarray], description: str) -> None:
    """Raise UserError naming the first split of `splits` ({name: array}) holding NaN or inf:
    no framework may train on non-finite inputs (one diverges, another reports chance)."""
    for name, x in splits.items():
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise UserError(f"{description}: {int(bad.sum())} non-finite values in the prepared "
                            f"{name} inputs (first in image {first}); check the data files")


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load cfg.task, split it (common.splits) and standardise it into float32 NHWC arrays.

    Raises UserError (via common.data) for unreadable data, and when a prepared array holds a
    non-finite value."""
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
    # Per-channel standardisation with statistics of the training split only (no peeking at
    # validation or test data): SGD from a Glorot start learns far faster on centred inputs.
    mean, std, constant = standardisation(ds.x_train[split.train])
    if cfg.pipeline == "transfer":  # [0, 1] RGB: each backbone normalises its own way
        mean, std, constant = np.zeros_like(mean), np.ones_like(std), ()

    def scale(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / np.float32(255.0) - mean.astype(np.float32))
                / std.astype(np.float32))

    data = PreparedData(
        x_train=scale(ds.x_train[split.train]), y_train=ds.y_train[split.train].astype(np.int64),
        x_val=scale(ds.x_train[split.val]), y_val=ds.y_train[split.val].astype(np.int64),
        x_test=scale(ds.x_test), y_test=ds.y_test.astype(np.int64),
        input_shape=tuple(int(d) for d in ds.x_train.shape[1:]),
        num_classes=len(ds.class_names), class_names=ds.class_names, split_hash=split.hash,
        channel_mean=tuple(mean.round(6).tolist()), channel_std=tuple(std.round(6).tolist()),
        constant_channels=constant,
    )
    check_finite({"training": data.x_train, "validation": data.x_val, "test": data.x_test},
                 cfg.task)
    return data

