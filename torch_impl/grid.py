"""The PyTorch grid-search backend (common.worker runs it in a PyTorch process). Mirrors
keras_impl/grid.py.

scikit-learn's GridSearchCV (run by common.worker.run_grid_job) over a skorch NeuralNetClassifier.
The module is the suite's own: built from the ArchSpec by torch_impl.model and started from the
shared initial weights; the optimizer is torch_impl.optim.make_optimizer with the suite's
hyperparameters (skorch calls it like an optimizer class, see `suite_optimizer`), and the loss is
cross-entropy on logits, as in torch_impl.train and on the Keras side.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from common.config import RunConfig
from common.init import initial_weights
from common.loop import EVAL_BATCH_SIZE
from common.specs import ArchSpec
from common.data.prepare import PreparedData
from common.worker.grid import GridBackend
from torch_impl.model import build_model, count_params as count_model_params, load_weights
from torch_impl.optim import make_optimizer
from torch_impl.train import resolve_device


class SpecNet(nn.Module):
    """The suite's CNN as a skorch module: skorch builds it anew (from these args) for every fit."""

    def __init__(self, arch: ArchSpec, input_shape: tuple[int, int, int], num_classes: int,
                 seed: int, init: str):
        super().__init__()
        self.net = build_model(arch, input_shape, num_classes)
        if init == "shared":
            load_weights(self.net, initial_weights(arch, input_shape, num_classes, seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def suite_optimizer(params: Iterable, lr: float, hp: dict) -> torch.optim.Optimizer:
    """skorch calls `optimizer(params, lr=net.lr, **optimizer__kwargs)`; this adapter hands the
    suite's full hyperparameters to make_optimizer (which also picks the Keras forms of SGD, Adam,
    RMSprop, Adagrad and Adamax),
    with skorch's lr, which GridSearchCV sets."""
    return make_optimizer(params, {**hp, "lr": lr})


class SeededNeuralNetClassifier(NeuralNetClassifier):
    """NeuralNetClassifier whose every fit starts from torch.manual_seed(random_state), the
    counterpart of scikeras' random_state: dropout and the batch order are reproducible per fit."""

    def __init__(self, module, *args, random_state: int | None = None, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.random_state = random_state

    def initialize(self):
        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        return super().initialize()


def estimator_params(cfg: RunConfig) -> dict:
    """A grid point's config as NeuralNetClassifier parameters (module__*, optimizer__*)."""
    return {"module__arch": cfg.arch, "module__seed": cfg.seed, "module__init": cfg.init,
            "optimizer__hp": cfg.optimizer, "lr": cfg.optimizer["lr"],
            "batch_size": cfg.batch_size, "max_epochs": cfg.epochs, "random_state": cfg.seed}


def make_estimator(cfg: RunConfig, data: PreparedData) -> SeededNeuralNetClassifier:
    """The scikit-learn estimator GridSearchCV clones per fold, set up from the grid's first
    config and the prepared data's shape and classes (one GridBackend function; mirrors
    keras_impl.grid.make_estimator)."""
    return SeededNeuralNetClassifier(
        SpecNet, module__input_shape=data.input_shape, module__num_classes=data.num_classes,
        # The dataset's classes in every fit: skorch would otherwise infer them from each fold's
        # labels (the network's size is module__num_classes either way).
        classes=list(range(data.num_classes)),
        criterion=nn.CrossEntropyLoss, optimizer=suite_optimizer,
        train_split=None,  # train on the whole fold, as Keras does (GridSearchCV validates)
        # shuffle: torch draws each epoch's batch order itself (seeded by random_state)
        iterator_train__shuffle=True, iterator_valid__batch_size=EVAL_BATCH_SIZE,
        device=resolve_device(cfg.device), verbose=0, **estimator_params(cfg))


def to_input(x: np.ndarray) -> np.ndarray:
    """Prepared NHWC float32 images as this framework's model takes them (NCHW)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW


def predict_logits(estimator: SeededNeuralNetClassifier, x: np.ndarray) -> np.ndarray:
    """Logits (N, classes) of the fitted estimator's model for inputs from to_input, inference mode."""
    return estimator.forward(x, training=False).numpy()


def count_params(estimator: SeededNeuralNetClassifier) -> int:
    """Trainable parameters of the fitted estimator's model."""
    return count_model_params(estimator.module_)


BACKEND = GridBackend(make_estimator=make_estimator, estimator_params=estimator_params,
                      to_input=to_input, predict_logits=predict_logits, count_params=count_params)

