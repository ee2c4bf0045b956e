"""The epoch driver both frameworks run, so both follow one timing rule and one callback semantics.

A framework supplies a `Trainer` (train one epoch in a given sample order, predict logits, get and
set weights, set the learning rate); this module decides everything else: the sample order of each
epoch, what is timed, validation metrics (from common.metrics), restoring the best weights,
early stopping, learning-rate reduction and divergence.

Timing rule (identical for both frameworks):
- an epoch's seconds = its training pass plus its validation prediction, wall-clock;
- data loading, model building and the final test prediction are outside the timer;
- `train_seconds` is the sum of the epoch seconds;
- first-epoch overhead (graph tracing, compilation, warm-up) = first epoch minus the median of the
  later epochs; with a single epoch, the first batch minus the median batch of that epoch,
  which the Trainer reports as `last_epoch_batch_seconds`.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from common.metrics import score
from common.splits import epoch_order

EVAL_BATCH_SIZE = 512  # inference only (validation, test): large batches, the same in both frameworks
TRANSFER_EVAL_BATCH_SIZE = 128  # inference through a pretrained backbone: bounds its activations' memory


class Trainer(Protocol):
    """What keras_impl.train.KerasTrainer and torch_impl.train.TorchTrainer both implement."""

    name: str
    batch_seconds: list[float]  # per-batch times of the last training epoch (first-epoch rule)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, bar: Any) -> tuple[float, float]:
        """One pass over x[order] in mini-batches; returns (mean loss, accuracy) on those batches."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for x, inference mode (dropout off, BatchNorm on moving statistics)."""

    def get_weights(self) -> Any: ...

    def set_weights(self, weights: Any) -> None: ...

    def set_lr(self, lr: float) -> None: ...


@dataclass(frozen=True)
class Callbacks:
    """One semantics for both frameworks (documented in the README):

    - an epoch improves when val_loss < best - min_delta (absolute threshold);
    - early stopping stops after `early_stopping` consecutive epochs without improvement;
    - reduce-on-plateau multiplies the lr by `factor` (not below `min_lr`) after `patience`
      consecutive epochs without improvement, then waits another `patience` epochs;
    - restore_best puts back the weights of the best epoch before testing;
    - target_accuracy (--target-accuracy) only observes: the report gives the training seconds
      until the validation accuracy first reached it (MLPerf's time to quality); it stops nothing.
    """

    restore_best: bool = True
    early_stopping: int | None = None
    reduce_lr: tuple[float, int, float] | None = None  # (factor, patience, min_lr)
    min_delta: float = 0.0
    target_accuracy: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "Callbacks":
        data = dict(data)
        if data.get("reduce_lr") is not None:  # JSON has lists, not tuples
            data["reduce_lr"] = tuple(data["reduce_lr"])
        return cls(**data)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 when no epoch had a finite validation loss
    stopped_early: bool = False
    diverged: bool = False
    first_epoch_overhead_seconds: float = 0.0

    @property
    def epoch_seconds(self) -> list[float]:
        return [h["seconds"] for h in self.history]

    @property
    def train_seconds(self) -> float:
        return float(sum(self.epoch_seconds))


def first_epoch_overhead(epoch_seconds: list[float], first_epoch_batches: list[float]) -> float:
    if len(epoch_seconds) >= 2:
        return max(epoch_seconds[0] - statistics.median(epoch_seconds[1:]), 0.0)
    if len(first_epoch_batches) >= 2:
        return max(first_epoch_batches[0] - statistics.median(first_epoch_batches[1:]), 0.0)
    return 0.0


def fit(
    trainer: Trainer,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    lr: float,
    callbacks: Callbacks,
) -> FitResult:
    result = FitResult()
    best_loss, best_weights, wait, plateau_wait = math.inf, None, 0, 0
    first_batches: list[float] = []
    n_batches = math.ceil(len(x_train) / batch_size)
    for epoch in range(1, epochs + 1):
        order = epoch_order(len(x_train), seed, epoch)
        bar = tqdm(total=n_batches, desc=f"{trainer.name} epoch {epoch}/{epochs}",
                   unit="batch", leave=False, disable=None, file=sys.stderr)
        start = time.perf_counter()
        train_loss, train_acc = trainer.train_epoch(x_train, y_train, order, bar)
        val_logits = trainer.predict(x_val)
        seconds = time.perf_counter() - start
        bar.close()
        if epoch == 1:
            first_batches = list(trainer.batch_seconds)
        val = score(val_logits, y_val)
        result.history.append({
            "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
            "val_loss": val.loss, "val_accuracy": val.accuracy, "seconds": seconds, "lr": lr,
        })
        print(f"{trainer.name:>5} epoch {epoch}/{epochs}: loss {train_loss:.4f} "
              f"acc {train_acc:.4f} val_loss {val.loss:.4f} val_acc {val.accuracy:.4f} "
              f"({seconds:.1f}s)", file=sys.stderr, flush=True)
        if not (math.isfinite(train_loss) and math.isfinite(val.loss)):
            result.diverged = True
            break
        if val.loss < best_loss - callbacks.min_delta:
            best_loss, wait, plateau_wait = val.loss, 0, 0
            result.best_epoch = epoch
            if callbacks.restore_best:
                best_weights = trainer.get_weights()
        else:
            wait += 1
            plateau_wait += 1
        if callbacks.early_stopping is not None and wait >= callbacks.early_stopping:
            result.stopped_early = epoch < epochs
            break
        if callbacks.reduce_lr is not None:
            factor, patience, min_lr = callbacks.reduce_lr
            if plateau_wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr)
                trainer.set_lr(lr)
                plateau_wait = 0
    if callbacks.restore_best and best_weights is not None and result.best_epoch != len(result.history):
        trainer.set_weights(best_weights)
    result.first_epoch_overhead_seconds = first_epoch_overhead(result.epoch_seconds, first_batches)
    return result
