"""Optimizers from common.optim hyperparameters. Mirrors keras_impl/optim.py.

Adadelta and NAdam are torch.optim's own classes with every hyperparameter set explicitly
(NAdam with momentum_decay=1.0: Keras' momentum schedule 0.96^t). Adam, RMSprop, Adagrad and
Adamax place epsilon differently in the two frameworks (Keras: Adam's "epsilon hat", inside
the square root for RMSprop and Adagrad, after the max for Adamax; torch.optim: outside the
root, inside the max), which no torch.optim setting reproduces, and SGD's momentum carries the
learning rate differently once it changes (KerasFormSGD); the suite uses the Keras form on
both sides, via the small classes below (docs/fairness.md, defaults table). Adagrad's and
Adamax's differences are 1.7e-7 and 1.4e-8 relative after one step, far inside the float32
check's 1e-4; the float64 parity proof found them (common/parity.py).
"""

from __future__ import annotations

from typing import Iterable

import torch


def _evaluate(closure):
    """torch.optim's step(closure) contract: the closure computes the gradients (and returns the
    loss) before the update; skorch's training step relies on it."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _state_buffer(state: dict, key: str, p: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """state[key], created as a tensor like `p` filled with `fill` on the first call only (not
    `state.setdefault(key, torch.zeros_like(p))`, which builds and fills a new tensor the size
    of the parameter on every step: a memory pass per parameter and step that Keras does not
    make, which slowed a network with a large dense layer by about a tenth)."""
    if key not in state:
        state[key] = torch.full_like(p, fill)
    return state[key]


class _KerasForm(torch.optim.Optimizer):
    """A per-parameter update rule written as Keras 3 computes it: `step` runs the closure
    (torch.optim's contract) and applies `_update` to every parameter that has a gradient, with
    that parameter's state dict (empty on its first step) and its group's hyperparameters."""

    def __init__(self, params: Iterable, **hyperparameters: float | bool):
        super().__init__(params, hyperparameters)

    def _update(self, p: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, self.state[p], group)
        return loss


class KerasFormSGD(_KerasForm):
    """SGD with momentum as Keras 3 computes it: v = m v - lr g; p += v (Nesterov: p += m v -
    lr g). torch.optim.SGD keeps buf = m buf + g and steps p -= lr buf: the same while lr is
    constant, but when a schedule or reduce-on-plateau changes lr, torch rescales the whole
    accumulated velocity by the new lr and Keras only the new gradient's share."""

    def __init__(self, params: Iterable, lr: float, momentum: float, nesterov: bool):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov)

    def _update(self, p, g, state, group):
        lr, m = group["lr"], group["momentum"]
        if m == 0:
            p.add_(g, alpha=-lr)
            return
        v = _state_buffer(state, "v", p)
        v.mul_(m).add_(g, alpha=-lr)
        if group["nesterov"]:
            p.add_(v, alpha=m).add_(g, alpha=-lr)
        else:
            p.add_(v)


class KerasFormAdam(_KerasForm):
    """Adam as Keras 3 computes it: p -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)."""

    def __init__(self, params: Iterable, lr: float, beta_1: float, beta_2: float, epsilon: float):
        super().__init__(params, lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)

    def _update(self, p, g, state, group):
        b1, b2 = group["beta_1"], group["beta_2"]
        if not state:
            state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        alpha = group["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
        p.addcdiv_(m, v.sqrt().add_(group["epsilon"]), value=-alpha)


class KerasFormRMSprop(_KerasForm):
    """RMSprop as Keras 3 computes it: v = rho v + (1-rho) g^2; p -= lr * g / sqrt(v + eps)."""

    def __init__(self, params: Iterable, lr: float, rho: float, epsilon: float):
        super().__init__(params, lr=lr, rho=rho, epsilon=epsilon)

    def _update(self, p, g, state, group):
        v = _state_buffer(state, "v", p)
        v.mul_(group["rho"]).addcmul_(g, g, value=1 - group["rho"])
        p.addcdiv_(g, v.add(group["epsilon"]).sqrt_(), value=-group["lr"])


class KerasFormAdagrad(_KerasForm):
    """Adagrad as Keras 3 computes it: a = a0 + sum g^2; p -= lr * g / sqrt(a + eps).
    torch.optim.Adagrad adds eps outside the root, lr * g / (sqrt(a) + eps): another function,
    1.7e-7 apart relative after one step from a0 = 0.1 (the float64 parity proof found it;
    the float32 check's 1e-4 did not)."""

    def __init__(self, params: Iterable, lr: float, initial_accumulator: float, epsilon: float):
        super().__init__(params, lr=lr, initial_accumulator=initial_accumulator, epsilon=epsilon)

    def _update(self, p, g, state, group):
        a = _state_buffer(state, "sum", p, group["initial_accumulator"])
        a.addcmul_(g, g)
        p.addcdiv_(g, a.add(group["epsilon"]).sqrt_(), value=-group["lr"])


class KerasFormAdamax(_KerasForm):
    """Adamax as Keras 3 computes it: m += (g - m)(1 - beta_1); u = max(beta_2 u, |g|);
    p -= lr m / ((1 - beta_1^t)(u + eps)). torch.optim.Adamax takes max(beta_2 u, |g| + eps):
    the same function only where |g| is far above eps (float64 proof: 1.4e-8 apart relative
    after one step on whale_cnn)."""

    def __init__(self, params: Iterable, lr: float, beta_1: float, beta_2: float, epsilon: float):
        super().__init__(params, lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)

    def _update(self, p, g, state, group):
        b1, b2 = group["beta_1"], group["beta_2"]
        if not state:
            state.update(step=0, m=torch.zeros_like(p), u=torch.zeros_like(p))
        state["step"] += 1
        m, u = state["m"], state["u"]
        m.add_((g - m) * (1 - b1))
        torch.maximum(u * b2, g.abs(), out=u)
        p.sub_(group["lr"] * m / ((1 - b1 ** state["step"]) * (u + group["epsilon"])))


def _optimizer(params: list, hp: dict) -> torch.optim.Optimizer:
    name = hp["name"]
    if name == "sgd":
        return KerasFormSGD(params, hp["lr"], hp["momentum"], hp.get("nesterov", False))
    if name == "adam":
        return KerasFormAdam(params, hp["lr"], hp["beta_1"], hp["beta_2"], hp["epsilon"])
    if name == "rmsprop":
        return KerasFormRMSprop(params, hp["lr"], hp["rho"], hp["epsilon"])
    if name == "adagrad":
        return KerasFormAdagrad(params, hp["lr"], hp["initial_accumulator"], hp["epsilon"])
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=hp["lr"], rho=hp["rho"], eps=hp["epsilon"],
                                    weight_decay=0.0)
    if name == "adamax":
        return KerasFormAdamax(params, hp["lr"], hp["beta_1"], hp["beta_2"], hp["epsilon"])
    if name == "nadam":
        # Keras' momentum schedule mu_t = beta_1 (1 - 0.5 * 0.96^t); torch's is 0.96^(t *
        # momentum_decay), default momentum_decay 4e-3
        return torch.optim.NAdam(params, lr=hp["lr"], betas=(hp["beta_1"], hp["beta_2"]),
                                 eps=hp["epsilon"], momentum_decay=1.0, weight_decay=0.0,
                                 decoupled_weight_decay=False)
    raise ValueError(f"no torch optimizer for {name!r}")


def make_optimizer(params: Iterable, hp: dict) -> torch.optim.Optimizer:
    """The optimizer of hyperparameters `hp` (common.optim.resolve_optimizer: name, lr and the
    rest, Keras' meaning on both sides). Mirrors keras_impl.optim.make_optimizer. Weight decay,
    in Keras' order: the decoupled kind (w -= lr * wd * w, Keras' `weight_decay`) and the L2
    kind (g += wd * w, PyTorch's `weight_decay`) are applied by a step pre-hook, before the
    update, for every optimizer alike: the L2 term from the weights before the decay, as the
    Keras side adds it to the gradients before Keras decays the weights. ValueError for an
    unknown name."""
    params = list(params)
    optimizer = _optimizer(params, hp)
    decay, l2 = hp.get("decoupled_weight_decay", 0.0), hp.get("l2", 0.0)
    if decay or l2:
        def before_step(opt: torch.optim.Optimizer, *_args) -> None:
            with torch.no_grad():
                for group in opt.param_groups:
                    for p in group["params"]:
                        if p.grad is None:
                            continue
                        if l2:  # the gradient of (l2 / 2) * ||w||^2
                            p.grad.add_(p, alpha=l2)
                        if decay:  # Keras: variable -= variable * wd * lr, before the update
                            p.mul_(1 - group["lr"] * decay)

        optimizer.register_step_pre_hook(before_step)
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the optimizer's learning rate to `lr` for the following steps."""
    for group in optimizer.param_groups:
        group["lr"] = lr
