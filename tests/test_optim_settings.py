"""The optimizer settings labs give (epsilon, betas, rho, Nesterov, both kinds of weight decay)
mean the same in every framework: one step from the shared weights agrees within the parity
tolerance on every installed Keras backend (tests/test_parity.py, in the suite's one parity
run), and each setting changes that step by over ten times the tolerance (here: so that check
would see a side that ignored it)."""

from __future__ import annotations

import sys

import pytest

from common.errors import UserError
from common.frameworks import REFERENCE, installed, is_keras
from common.optim import resolve_optimizer
from common.parity import TOLERANCE, case_to_dict
from common.specs import get_preset
from conftest import ROOT

UNDER_TEST = (REFERENCE, *(f for f in installed() if is_keras(f)))
SETTINGS = {
    "sgd": resolve_optimizer("sgd"),
    "sgd+nesterov+l2": resolve_optimizer("sgd", lr=0.1, nesterov=True, l2=0.05),
    "adam": resolve_optimizer("adam"),
    "adam+betas+eps+decoupled": resolve_optimizer("adam", beta_1=0.8, beta_2=0.99,
                                                  epsilon=1e-3, decoupled_weight_decay=2.0),
    "rmsprop": resolve_optimizer("rmsprop"),
    "rmsprop+rho+l2+decoupled": resolve_optimizer("rmsprop", rho=0.99, epsilon=1e-3, l2=0.5,
                                                  decoupled_weight_decay=0.5),
}


def test_each_setting_changes_the_step(tmp_path):
    """In PyTorch alone: the step with the settings differs from the default one by far more
    than the tolerance, so a framework that ignored a setting would fail the test above."""
    import numpy as np

    from common.launch import call_worker

    optimizers = [{**hp, "label": label} for label, hp in SETTINGS.items()]
    case = case_to_dict("digits_cnn", get_preset("digits_cnn"), (8, 8, 1), 10, 0, optimizers)
    out = tmp_path / "torch.npz"
    call_worker(REFERENCE, {"kind": "parity", "cases": [case], "out": str(out)})
    arrays = dict(np.load(out))
    for label in SETTINGS:
        if "+" not in label:
            continue
        base = label.split("+")[0]
        keys = [k for k in arrays if k.startswith(f"digits_cnn|{label}/")]
        gap = max(np.abs(arrays[k] - arrays[k.replace(f"|{label}/", f"|{base}/")]).max()
                  for k in keys)
        assert gap > 10 * TOLERANCE, (label, gap)


def test_settings_an_optimizer_lacks_are_refused():
    with pytest.raises(UserError, match="--rho applies to --optimizer rmsprop or adadelta"):
        resolve_optimizer("adam", rho=0.9)
    with pytest.raises(UserError, match="--nesterov applies to --optimizer sgd"):
        resolve_optimizer("adam", nesterov=True)
    with pytest.raises(UserError, match="--beta-1 0.9 is out of range|--beta-1 1 is out"):
        resolve_optimizer("adam", beta_1=1.0)
    assert resolve_optimizer("adam")["l2"] == 0.0


_ALLOCATIONS = """
import json, torch
from common.optim import resolve_optimizer
from torch_impl.optim import make_optimizer
counts = {}
for name in ("sgd", "adam", "rmsprop", "adagrad", "adamax", "adadelta", "nadam"):
    w = torch.nn.Parameter(torch.ones(4, 3))
    opt = make_optimizer([w], resolve_optimizer(name, **({"momentum": 0.9} if name == "sgd" else {})))
    calls = []
    def step():
        w.grad = torch.full_like(w, 0.5)
        opt.step()
    step()
    originals = {f: getattr(torch, f) for f in ("zeros_like", "full_like", "ones_like")}
    for f, original in originals.items():
        setattr(torch, f, lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k))
    step(); step()
    for f, original in originals.items():
        setattr(torch, f, original)
    counts[name] = len(calls) - 2  # the two gradients the steps set
print(json.dumps(counts))
"""


def test_torch_optimizer_state_is_allocated_on_the_first_step_only():
    """The PyTorch optimizers build their state tensors (velocity, moments, accumulators) once:
    a later step that built a new parameter-sized tensor per parameter (e.g. the argument of
    `state.setdefault("v", torch.zeros_like(p))`) would add a memory pass per step that the
    Keras side does not make, and PyTorch's times would carry it (12% on vgg_block)."""
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _ALLOCATIONS], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts == {name: 0 for name in counts}, counts
