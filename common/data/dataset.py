"""The data stage's types and shared rules: `Dataset` (what every loader returns), the found
source of a dataset, the one-line error helpers, the split checks and the file-name slug of a task.
Framework-free; imports no slow library (numpy only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.errors import DataError

OWN_KINDS = ("folder", "csv")  # the task prefixes of own images: folder:PATH, csv:FILE
_MAX_REASON_CHARS = 150


@dataclass(frozen=True)
class Dataset:
    """A task's train and test arrays, identical for both framework back-ends."""

    name: str  # "digits" | "mnist" | "cifar10" | the task string of own images ("folder:PATH")
    x_train: np.ndarray  # uint8, NHWC (N, H, W, C)  (MNIST/digits: C=1)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray  # uint8 NHWC
    y_test: np.ndarray  # int64
    class_names: tuple[str, ...]
    source: str  # human-readable: which files/dir it was read from
    notes: tuple[str, ...] = ()  # facts a report must state (e.g. a test split not stratified)


class _Splits(NamedTuple):
    """The four decoded arrays of a dataset (also the key names in the decoded-array cache)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class _Source:
    """Data found on disk: a description, the files it depends on, and how to decode them."""

    description: str
    files: tuple[str, ...]  # absolute paths; their sizes and mtimes key the decoded-array cache
    decode: Callable[[], _Splits]
    key: tuple = ()  # JSON-able; whatever else changes the decoded arrays (own images: size, split)


class _DownloadFailed(Exception):
    """Every mirror failed (offline, HTTP error...); the caller turns this into 'not found'."""


def task_slug(task: str) -> str:
    """A file-name-safe name: 'digits' -> 'digits', 'folder:/a/b/pets' -> 'folder-pets',
    'csv:/x/train.csv' -> 'csv-train' (the decoded-array cache and run folders are named by it)."""
    kind, colon, where = task.partition(":")
    if colon and kind in OWN_KINDS:
        # resolve() so that 'folder:.' is named after the folder it means
        stem = Path(where).expanduser().resolve().stem if where else ""
        task = f"{kind}-{stem}" if stem else kind
    return re.sub(r"[^A-Za-z0-9._-]+", "-", task)


# Every loader takes the task string and the same keyword options (common.tasks.load_dataset
# passes them all); each ignores the options that do not apply to it.


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def _corrupt(path: str | Path, detail: str) -> DataError:
    return DataError(
        f"{path} is truncated or corrupt ({detail}); re-download it or replace it with a good copy"
    )


def _not_found(what: str, looked: Sequence[Path], notes: Sequence[str], how: str) -> DataError:
    places = ", ".join(str(p) for p in looked)
    return DataError(f"{what} data not found: looked in {places}; {'; '.join(notes)}; {how}")


# ----------------------------------------------------------------------------- validation


def _check_splits(splits: _Splits, description: str, num_classes: int) -> None:
    """Images and labels must pair up, and labels must name a class."""
    for split, x, y in (("training", splits.x_train, splits.y_train),
                        ("test", splits.x_test, splits.y_test)):
        if len(x) != len(y):
            raise DataError(f"{description}: {len(x)} {split} images but {len(y)} labels; the "
                            "files do not belong together, replace them with a matching set")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{description}: {split} labels outside 0..{num_classes - 1}; the "
                            "label file is corrupt, re-download or replace it")
    if splits.x_train.shape[1:] != splits.x_test.shape[1:]:
        raise DataError(f"{description}: training images are {splits.x_train.shape[1:]} but test "
                        f"images {splits.x_test.shape[1:]}; replace them with a matching set")
