"""Optimizers from common.optim hyperparameters. Mirrors torch_impl/optim.py.

All are Keras' own classes with every hyperparameter set explicitly (Keras' formulas are the
reference; torch_impl/optim.py reproduces the two that torch.optim computes differently).
"""

from __future__ import annotations

import keras


def _with_l2(cls: type) -> type:
    """`cls` adding an L2 term wd * w to each gradient before its update (PyTorch's coupled
    `weight_decay`; Keras has no optimizer setting for it). `apply` is the one step every
    backend's trainer goes through (stateless_apply on JAX calls it too)."""

    class L2(cls):
        def __init__(self, *args, l2: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.l2 = l2

        def apply(self, grads, trainable_variables=None):
            variables = (self._trainable_variables if trainable_variables is None
                         else trainable_variables)
            grads = [None if g is None else g + self.l2 * keras.ops.cast(v, g.dtype)
                     for g, v in zip(grads, variables)]
            return super().apply(grads, trainable_variables)

    L2.__name__ = f"L2{cls.__name__}"
    return L2


def make_optimizer(hp: dict) -> keras.optimizers.Optimizer:
    """The optimizer of hyperparameters `hp` (common.optim.resolve_optimizer: name, lr and the
    rest, Keras' meaning on both sides), with its decoupled weight decay (Keras' own
    `weight_decay`) and L2 term (_with_l2). Mirrors torch_impl.optim.make_optimizer.
    ValueError for an unknown name."""
    name = hp["name"]
    classes = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
               "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad,
               "adadelta": keras.optimizers.Adadelta, "adamax": keras.optimizers.Adamax,
               "nadam": keras.optimizers.Nadam}
    if name not in classes:
        raise ValueError(f"no keras optimizer for {name!r}")
    settings = {
        "sgd": lambda: {"momentum": hp["momentum"], "nesterov": hp.get("nesterov", False)},
        "adam": lambda: {"beta_1": hp["beta_1"], "beta_2": hp["beta_2"],
                         "epsilon": hp["epsilon"], "amsgrad": False},
        "rmsprop": lambda: {"rho": hp["rho"], "momentum": 0.0, "epsilon": hp["epsilon"],
                            "centered": False},
        "adagrad": lambda: {"initial_accumulator_value": hp["initial_accumulator"],
                            "epsilon": hp["epsilon"]},
        "adadelta": lambda: {"rho": hp["rho"], "epsilon": hp["epsilon"]},
        "adamax": lambda: {"beta_1": hp["beta_1"], "beta_2": hp["beta_2"],
                           "epsilon": hp["epsilon"]},
        "nadam": lambda: {"beta_1": hp["beta_1"], "beta_2": hp["beta_2"],
                          "epsilon": hp["epsilon"]},
    }[name]()
    decay = hp.get("decoupled_weight_decay", 0.0)
    common = {"learning_rate": hp["lr"], **settings,
              **({"weight_decay": decay} if decay else {})}
    if hp.get("l2", 0.0):
        return _with_l2(classes[name])(l2=hp["l2"], **common)
    return classes[name](**common)


def set_lr(optimizer: keras.optimizers.Optimizer, lr: float) -> None:
    """Set the optimizer's learning rate to `lr` for the following steps."""
    optimizer.learning_rate.assign(lr)
