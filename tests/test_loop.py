"""common/loop.py: one callback semantics and one timing rule, checked with a scripted trainer."""

from __future__ import annotations

import numpy as np
import pytest

from common.loop import Callbacks, first_epoch_overhead, fit


class ScriptedTrainer:
    """Plays back a fixed validation-loss curve; 'weights' are the epoch they came from."""

    name = "fake"

    def __init__(self, val_losses: list[float], train_losses: list[float] | None = None):
        self.val_losses, self.train_losses = val_losses, train_losses
        self.epoch, self.weights, self.lrs, self.orders = 0, 0, [], []
        self.batch_seconds: list[float] = []

    def train_epoch(self, x, y, order, bar):
        self.epoch += 1
        self.weights = self.epoch
        self.orders.append(order.copy())
        self.batch_seconds = [0.5, 0.1, 0.1, 0.1]
        loss = self.train_losses[self.epoch - 1] if self.train_losses else 1.0
        return loss, 0.5

    def predict(self, x):
        # logits whose cross-entropy against label 0 is the scripted loss
        loss = self.val_losses[self.epoch - 1]
        p0 = np.exp(-loss)
        return np.log(np.array([[p0, 1 - p0]] * len(x)))

    def get_weights(self):
        return self.weights

    def set_weights(self, w):
        self.weights = w

    def set_lr(self, lr):
        self.lrs.append(lr)


def _fit(trainer, epochs, **callbacks):
    x, y = np.zeros((10, 1)), np.zeros(10, dtype=int)
    return fit(trainer, x, y, x, y, epochs=epochs, batch_size=4, seed=0, lr=0.1,
               callbacks=Callbacks(**callbacks))


def test_restore_best_puts_back_the_best_epoch():
    t = ScriptedTrainer([1.0, 0.5, 0.7, 0.9])
    result = _fit(t, 4)
    assert result.best_epoch == 2 and t.weights == 2
    assert [round(h["val_loss"], 6) for h in result.history] == [1.0, 0.5, 0.7, 0.9]


def test_no_restore_keeps_the_last_weights():
    t = ScriptedTrainer([1.0, 0.5, 0.7, 0.9])
    _fit(t, 4, restore_best=False)
    assert t.weights == 4


def test_early_stopping_counts_epochs_without_improvement():
    # improves at 2; epochs 3 and 4 do not improve -> patience 2 stops after epoch 4
    t = ScriptedTrainer([1.0, 0.5, 0.6, 0.5, 0.4, 0.3])
    result = _fit(t, 6, early_stopping=2)
    assert len(result.history) == 4 and result.stopped_early and t.weights == 2


def test_equal_loss_is_not_an_improvement():
    t = ScriptedTrainer([0.5, 0.5, 0.5])
    result = _fit(t, 3, early_stopping=2)
    assert len(result.history) == 3 and result.best_epoch == 1


def test_reduce_lr_on_plateau():
    t = ScriptedTrainer([1.0, 1.1, 1.2, 1.3, 1.4, 0.5])
    result = _fit(t, 6, reduce_lr=(0.5, 2, 0.03))
    assert t.lrs == [0.05, 0.03]  # after epochs 3 and 5; floored at min_lr
    assert [h["lr"] for h in result.history] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.03]


def test_divergence_stops_and_is_flagged():
    t = ScriptedTrainer([1.0, 1.0, 1.0], train_losses=[1.0, float("nan"), 1.0])
    result = _fit(t, 3)
    assert result.diverged and len(result.history) == 2


def test_epoch_orders_are_permutations_that_change_per_epoch():
    t = ScriptedTrainer([1.0, 0.9])
    _fit(t, 2)
    assert sorted(t.orders[0]) == list(range(10))
    assert not np.array_equal(t.orders[0], t.orders[1])


def test_first_epoch_overhead_rule():
    assert first_epoch_overhead([5.0, 2.0, 2.2, 1.8], []) == pytest.approx(3.0)
    assert first_epoch_overhead([1.0], [0.5, 0.1, 0.1, 0.1]) == pytest.approx(0.4)
    assert first_epoch_overhead([1.0, 2.0], []) == 0.0  # never negative
