"""The train/validation split and the per-epoch sample order, computed once for both frameworks.

Neither framework shuffles or splits on its own (no Keras `validation_split`, no DataLoader
shuffle): both receive the same index arrays from here, so they see the same mini-batches in the
same order. The split's hash goes into every record, so two records can be checked to share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from common.errors import UserError


@dataclass(frozen=True)
class Split:
    """Index arrays into a dataset's training pool: the training and validation examples."""
    train: np.ndarray  # indices into the dataset's training pool, int64
    val: np.ndarray

    @property
    def hash(self) -> str:
        """The split's index_hash: equal in two records exactly when they used the same examples."""
        return index_hash(self.train, self.val)


def index_hash(*parts: np.ndarray) -> str:
    """sha256 over index arrays (int64, little-endian, '|' between them), first 16 hex digits:
    two records with the same hash trained and validated on the same examples."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(np.asarray(part, dtype="<i8").tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def make_split(pool_size: int, val_size: int, train_size: int | None, seed: int) -> Split:
    """Seeded split of the training pool: the first `val_size` of one permutation validate (0:
    no validation set), the next `train_size` train (all the rest when None). Sizes beyond the
    pool are an error."""
    if val_size >= pool_size:
        raise UserError(
            f"--val-size {val_size} leaves no training data (the training pool has "
            f"{pool_size} examples); use a smaller --val-size"
        )
    available = pool_size - val_size
    if train_size is not None and train_size > available:
        raise UserError(
            f"--train-size {train_size} is larger than the {available} examples left after "
            f"--val-size {val_size}; use at most {available}"
        )
    order = np.random.default_rng(seed).permutation(pool_size)
    train_end = val_size + (available if train_size is None else train_size)
    return Split(train=np.sort(order[val_size:train_end]), val=np.sort(order[:val_size]))


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch `epoch` visits the n training examples (same in both frameworks).

    Seeded by (seed, epoch) so any epoch can be reproduced on its own (e.g. after a resume).
    """
    return np.random.default_rng([seed, epoch]).permutation(n)
