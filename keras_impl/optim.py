"""Optimizers from common.optim hyperparameters. Mirrors torch_impl/optim.py.

All are Keras' own classes with every hyperparameter set explicitly (Keras' formulas are the
reference; torch_impl/optim.py reproduces the two that torch.optim computes differently).
"""

from __future__ import annotations

import keras


def make_optimizer(hp: dict) -> keras.optimizers.Optimizer:
    """The optimizer of hyperparameters `hp` (common.optim.resolve_optimizer: name, lr and the
    rest, Keras' meaning on both sides). Mirrors torch_impl.optim.make_optimizer. ValueError for an
    unknown name."""
    name = hp["name"]
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=hp["lr"], momentum=hp["momentum"], nesterov=False)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=hp["lr"], beta_1=hp["beta_1"],
                                     beta_2=hp["beta_2"], epsilon=hp["epsilon"], amsgrad=False)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=hp["lr"], rho=hp["rho"], momentum=0.0,
                                        epsilon=hp["epsilon"], centered=False)
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=hp["lr"],
                                        initial_accumulator_value=hp["initial_accumulator"],
                                        epsilon=hp["epsilon"])
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate=hp["lr"], rho=hp["rho"],
                                         epsilon=hp["epsilon"])
    if name == "adamax":
        return keras.optimizers.Adamax(learning_rate=hp["lr"], beta_1=hp["beta_1"],
                                       beta_2=hp["beta_2"], epsilon=hp["epsilon"])
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=hp["lr"], beta_1=hp["beta_1"],
                                      beta_2=hp["beta_2"], epsilon=hp["epsilon"])
    raise ValueError(f"no keras optimizer for {name!r}")


def set_lr(optimizer: keras.optimizers.Optimizer, lr: float) -> None:
    """Set the optimizer's learning rate to `lr` for the following steps."""
    optimizer.learning_rate.assign(lr)
