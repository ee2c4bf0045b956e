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


def resolve_optimizer(name: str, lr: float | None = None, momentum: float | None = None) -> dict:
    """Full hyperparameters for `name`, with --lr / --momentum applied. Raises UserError."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    params = {"name": name, **OPTIMIZERS[name]}
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
    return params
