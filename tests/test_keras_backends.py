"""Keras on each of its backends (tensorflow, jax, torch) runs the same keras_impl code: it
trains an epoch on the same batches in the same order as PyTorch to PyTorch's loss and logits,
predicts, and a JAX or PyTorch-backend process never loads TensorFlow (nor any Keras process
scikit-learn or pandas).

A backend is fixed per process (KERAS_BACKEND), so each runs in its own `python -c` process, as
common.worker runs them, and all of them at once (one thread each). tests/test_parity.py checks
logits and one step of every optimizer for every preset on every backend, through the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from common.parity import TOLERANCE

BACKENDS = ("tensorflow", "jax", "torch")
LIBRARIES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}
SHAPE, CLASSES = (8, 8, 1), 10

# Both sides: one thread; a short training run on synthetic data from
# the shared weights, in common.splits' epoch order (digits_cnn has no dropout and no
# augmentation is on, so the two frameworks' runs must agree), and its logits.
_COMMON = """
import json, sys
import numpy as np
from common.config import RunConfig
from common.init import initial_weights
from common.optim import resolve_optimizer
from common.specs import get_preset
from common.splits import epoch_order
from common.data.prepare import PreparedData
from {impl} import train

facts = train.setup(1, 0, True)
device = train.resolve_device("cpu")
arrays = {{}}

rng = np.random.default_rng(0)
x = rng.standard_normal((120, 8, 8, 1)).astype(np.float32)
y = rng.integers(0, 10, 120)
data = PreparedData(x[:96], y[:96], x[96:], y[96:], x[96:], y[96:], (8, 8, 1), 10,
                    tuple("0123456789"), "synthetic")


def config(augment=()):
    return RunConfig(task="digits", model="digits_cnn", arch=get_preset("digits_cnn"),
                     optimizer=resolve_optimizer("adam"), epochs=1, batch_size=32, threads=1,
                     augment=augment)


trainer = train.make_trainer(config(), data, initial_weights(get_preset("digits_cnn"),
                             (8, 8, 1), 10, 0), device)
loss, accuracy = trainer.train_epoch(data.x_train, data.y_train, epoch_order(96, 0, 1))
arrays["trained|logits"] = np.asarray(trainer.predict(data.x_test))
result = {{"facts": facts, "device": device, "loss": loss, "accuracy": accuracy,
           "batches": len(trainer.batch_seconds)}}
"""

_KERAS = _COMMON + """
weights = trainer.get_weights()
trainer.set_lr(0.0)  # Adam at lr 0 moves nothing: the new rate reaches the next fit
trainer.train_epoch(data.x_train, data.y_train, epoch_order(96, 0, 2))
result["lr0_unchanged"] = all(np.array_equal(a, b) for a, b in zip(weights, trainer.get_weights()))
# augmentation layers in training mode (on jax, crop makes Keras train eagerly)
augmented = train.make_trainer(config(("flip", "crop", "contrast")), data, None, device)
aug_loss, _ = augmented.train_epoch(data.x_train, data.y_train, epoch_order(96, 0, 1))
result["augmented"] = [aug_loss, bool(np.isfinite(augmented.predict(data.x_test)).all())]
result["tensorflow_loaded"] = "tensorflow" in sys.modules
result["unused_loaded"] = sorted(m for m in ("sklearn", "pandas") if m in sys.modules)
np.savez({out!r}, **arrays)
print(json.dumps(result))
"""

_TORCH = _COMMON + """
np.savez({out!r}, **arrays)
print(json.dumps(result))
"""


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, tuple[dict, dict[str, np.ndarray]]]:
    """Per process ('pytorch': torch_impl; the rest: Keras backends): its result and arrays."""
    tmp = tmp_path_factory.mktemp("backends")
    procs = {}
    for name in ("pytorch", *BACKENDS):
        out = str(tmp / f"{name}.npz")
        code = (_TORCH.format(impl="torch_impl", out=out)
                if name == "pytorch" else
                _KERAS.format(impl="keras_impl", out=out))
        env = {**os.environ, "KERAS_BACKEND": name}
        procs[name] = (out, subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True))
    results = {}
    for name, (out, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {stderr[-3000:]}"
        with np.load(out) as arrays:
            results[name] = (json.loads(stdout.strip().splitlines()[-1]), dict(arrays))
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_trains_the_same_batches_as_pytorch(runs, backend):
    """One Adam epoch from the shared weights in the same order: the same loss, accuracy and
    logits as PyTorch (the batches fed in reverse order fail this), and set_lr takes effect."""
    (reference, ref_arrays), (result, arrays) = runs["pytorch"], runs[backend]
    assert result["batches"] == reference["batches"] == 3
    assert abs(result["loss"] - reference["loss"]) < TOLERANCE, (result, reference)
    assert result["accuracy"] == pytest.approx(reference["accuracy"])
    logits = arrays["trained|logits"]
    assert logits.shape == (24, CLASSES) and np.isfinite(logits).all()
    assert np.abs(logits - ref_arrays["trained|logits"]).max() < TOLERANCE
    assert result["lr0_unchanged"]
    aug_loss, aug_finite = result["augmented"]
    assert np.isfinite(aug_loss) and aug_finite


@pytest.mark.parametrize("backend", BACKENDS)
def test_setup_facts_name_the_backend_and_only_jax_and_torch_skip_tensorflow(runs, backend):
    result = runs[backend][0]
    facts = result["facts"]
    assert facts["framework"] == "keras" and facts["keras_backend"] == backend
    assert facts["deterministic"] is True and facts["compiled"]
    assert all(facts[lib] for lib in LIBRARIES[backend])
    assert not {lib for b in BACKENDS if b != backend for lib in LIBRARIES[b]} & set(facts)
    assert result["device"] == "cpu"
    # the control: the tensorflow backend's process has TensorFlow, so the check can fail
    assert result["tensorflow_loaded"] == (backend == "tensorflow")
    # Keras imports scikit-learn and pandas for features the suite does not use (1 s of every
    # Keras process's start): keras_impl imports Keras without them
    assert result["unused_loaded"] == []
    if backend == "tensorflow":  # the records of Keras on TensorFlow keep their facts
        assert facts["compiled"] == "XLA off (determinism)"
        assert set(facts) == {"framework", "keras", "keras_backend", "tensorflow",
                              "deterministic", "compiled"}
    if backend == "jax":  # one thread asked: XLA's CPU pool sized for one CPU
        assert facts["xla_cpu_threads"] == 1
        assert "--xla_gpu_deterministic_ops=true" in facts["xla_flags"]
