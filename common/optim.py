"""Optimizer registry: every hyperparameter is explicit and passed identically to both frameworks.

Keras 3 and PyTorch ship different defaults for the same optimizer (see the README's table);
the suite never relies on either. `resolve_optimizer` returns the full hyperparameter dict that
`keras_impl.train.make_optimizer` and `torch_impl.train.make_optimizer` both consume.
"""

from __future__ import annotations

from common.errors import UserError

# Suite defaults per optimizer. lr is the default learning rate when --lr is not given.
# eps/rho/accumulator values follow Keras 3 (explicitly set on the PyTorch side too).
OPTIMIZERS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.01, "momentum": 0.9},
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "rmsprop": {"lr": 1e-3, "rho": 0.9, "epsilon": 1e-7},
    "adagrad": {"lr": 1e-2, "initial_accumulator": 0.1, "epsilon": 1e-7},
    "adadelta": {"lr": 1.0, "rho": 0.95, "epsilon": 1e-7},
    # torch's defaults differ: lr 2e-3 and eps 1e-8 for both, and NAdam's momentum schedule
    # 0.96^(0.004 t) (momentum_decay 4e-3) where Keras uses 0.96^t (torch momentum_decay=1.0).
    "adamax": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "nadam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
}


# Optimizer settings a lab may give beyond lr and momentum: flag -> (the hyperparameter, the
# optimizers that have it). Weight decay has two meanings, offered under names that say which:
# - l2: an L2 term added to the gradient (g += wd * w) before the update: PyTorch's
#   `weight_decay` on SGD, Adam, RMSprop, ...; Keras has no such optimizer setting (a kernel
#   regularizer adds it to the loss), so keras_impl.optim adds it to the gradients itself;
# - decoupled_weight_decay: w -= lr * wd * w before the update, apart from the gradient: Keras'
#   `weight_decay` on every optimizer, PyTorch's AdamW; torch_impl.optim applies it itself.
# Both apply to every trainable parameter (biases and batch norm included), as PyTorch's does.
SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "epsilon": ("epsilon", ("adam", "rmsprop", "adagrad", "adadelta", "adamax", "nadam")),
    "beta_1": ("beta_1", ("adam", "adamax", "nadam")),
    "beta_2": ("beta_2", ("adam", "adamax", "nadam")),
    "rho": ("rho", ("rmsprop", "adadelta")),  # RMSprop's rho is PyTorch's alpha
    "nesterov": ("nesterov", ("sgd",)),
    "l2": ("l2", tuple(OPTIMIZERS)),
    "decoupled_weight_decay": ("decoupled_weight_decay", tuple(OPTIMIZERS)),
}


def resolve_optimizer(name: str, lr: float | None = None, momentum: float | None = None,
                      **settings: float | bool | None) -> dict:
    """Full hyperparameters for `name`, with --lr / --momentum and the SETTINGS given (None: the
    default) applied; every optimizer also carries nesterov (sgd), l2 and
    decoupled_weight_decay (0: none). Raises UserError naming the flag for a value out of
    range or a setting the optimizer does not have."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    params = {"name": name, **OPTIMIZERS[name], "l2": 0.0, "decoupled_weight_decay": 0.0}
    if name == "sgd":
        params["nesterov"] = False
    if lr is not None:
        if not lr > 0:
            raise UserError("--lr must be a positive number")
        params["lr"] = float(lr)
    if momentum is not None:
        if name != "sgd":
            raise UserError("--momentum applies to --optimizer sgd only")
        if not 0.0 <= momentum < 1.0:
            raise UserError("--momentum must be in [0, 1)")
        params["momentum"] = float(momentum)
    for flag, value in settings.items():
        if value is None or value is False:
            continue
        key, owners = SETTINGS[flag]
        option = "--" + flag.replace("_", "-")
        if name not in owners:
            raise UserError(f"{option} applies to --optimizer {' or '.join(owners)}, not {name}")
        if flag == "nesterov":
            params[key] = True
            continue
        ok = {"epsilon": value > 0, "beta_1": 0 <= value < 1, "beta_2": 0 <= value < 1,
              "rho": 0 <= value < 1, "l2": value >= 0, "decoupled_weight_decay": value >= 0}[flag]
        if not ok:
            raise UserError(f"{option} {value:g} is out of range (" + {
                "epsilon": "a positive number", "l2": "0 or more",
                "decoupled_weight_decay": "0 or more"}.get(flag, "in [0, 1)") + ")")
        params[key] = float(value)
    if name == "sgd" and params["nesterov"] and params["momentum"] == 0:
        raise UserError("--nesterov needs --momentum above 0")
    return params
