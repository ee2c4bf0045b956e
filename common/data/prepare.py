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


# --normalize's fixed statistics, per channel in [0, 1] units: (mean, std). ImageNet's are
# torchvision's (and keras.applications' 'torch' mode's).
FIXED_NORMALIZATION = {"unit": (0.0, 1.0), "symmetric": (0.5, 0.5),
                       "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}


def normalization(cfg: RunConfig, train: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(mean, std, constant channels) in [0, 1] units that cfg.normalize applies to uint8 images
    `train` (N, H, W, C): the training split's per-channel statistics (standardize), fixed
    ones (FIXED_NORMALIZATION), or none (mean 0, std 1/255: raw 0-255 values as float). A
    transfer run gets [0, 1] RGB, which each backbone normalises its own way. Raises UserError
    for imagenet statistics on images without 3 channels."""
    channels = train.shape[-1]
    if cfg.pipeline == "transfer":
        return np.zeros(channels), np.ones(channels), ()
    if cfg.normalize == "standardize":
        return standardisation(train)
    if cfg.normalize == "none":
        return np.zeros(channels), np.full(channels, 1 / 255.0), ()
    if cfg.normalize == "imagenet" and channels != 3:
        raise UserError(f"--normalize imagenet needs RGB images; {cfg.task} has {channels} "
                        "channel(s): use standardize, unit or symmetric")
    mean, std = FIXED_NORMALIZATION[cfg.normalize]
    return (np.broadcast_to(np.asarray(mean, np.float64), (channels,)).copy(),
            np.broadcast_to(np.asarray(std, np.float64), (channels,)).copy(), ())


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load cfg.task, split it (common.splits) and normalise it (cfg.normalize: normalization)
    into float32 NHWC arrays.

    Raises UserError (via common.data) for unreadable data, and when a prepared array holds a
    non-finite value."""
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
    # Per-channel standardisation with statistics of the training split only (no peeking at
    # validation or test data): SGD from a Glorot start learns far faster on centred inputs.
    mean, std, constant = normalization(cfg, ds.x_train[split.train])

    def scale(x: np.ndarray) -> np.ndarray:
        if cfg.normalize == "none" and cfg.pipeline == "cnn":
            return x.astype(np.float32)  # the raw 0-255 values, exactly
        return ((x.astype(np.float32) / np.float32(255.0) - mean.astype(np.float32))
                / std.astype(np.float32))

    # --validate-on test: the epochs are monitored on the test set (a lab's choice, said in the
    # report: the test accuracy is then not an unbiased estimate)
    x_val, y_val = ((ds.x_test, ds.y_test) if cfg.validate_on == "test"
                    else (ds.x_train[split.val], ds.y_train[split.val]))
    data = PreparedData(
        x_train=scale(ds.x_train[split.train]), y_train=ds.y_train[split.train].astype(np.int64),
        x_val=scale(x_val), y_val=y_val.astype(np.int64),
        x_test=scale(ds.x_test), y_test=ds.y_test.astype(np.int64),
        input_shape=tuple(int(d) for d in ds.x_train.shape[1:]),
        num_classes=len(ds.class_names), class_names=ds.class_names, split_hash=split.hash,
        channel_mean=tuple(mean.round(6).tolist()), channel_std=tuple(std.round(6).tolist()),
        constant_channels=constant,
    )
    check_finite({"training": data.x_train, "validation": data.x_val, "test": data.x_test},
                 cfg.task)
    return data

