"""The Keras Trainer that common.loop drives (run by common.worker in a Keras process).
Mirrors torch_impl/train.py.

compile / fit / predict: each epoch is one `fit(epochs=1)` call on the batches in the epoch order
from common.splits (shuffle=False), so Keras sees the same mini-batches as PyTorch; common.loop
drives the epochs, the timing and the callbacks.

One Keras, three backends (KERAS_BACKEND, set by common.worker before Keras is imported):
tensorflow, jax or torch. Only the tensorflow backend imports TensorFlow (its tf.data feed,
threading, determinism and device calls); jax and torch get numpy arrays and their own calls.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import TYPE_CHECKING

import keras
import numpy as np

from common.config import RunConfig
from common.data.prepare import PreparedData
from common.errors import UserError
from common.loop import EVAL_BATCH_SIZE
from common.machine import fast_options
from keras_impl.augment import build_augmenter
from keras_impl.model import build_model, count_params, load_weights
from keras_impl.optim import make_optimizer, set_lr

if TYPE_CHECKING:
    import tensorflow as tf

BACKEND = keras.backend.backend()  # "tensorflow" | "jax" | "torch": fixed for the process
_OR_CPU = "or use --device cpu or auto"


# ----------------------------------------------------------------------------- device


def resolve_device(requested: str) -> str:
    """'cpu' | 'cuda' | 'auto' -> 'cpu' | 'cuda'; the backend then runs there. Call before
    any model is built (Keras places variables where the backend's default device is)."""
    return {"tensorflow": _device_tensorflow, "jax": _device_jax,
            "torch": _device_torch}[BACKEND](requested)


def _device_tensorflow(requested: str) -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if requested == "cuda" and not gpus:
        build = ("this TensorFlow is a CPU-only build (tensorflow-cpu); on Linux with CUDA, "
                 "`pip install tensorflow[and-cuda]` can use the GPU"
                 if not tf.test.is_built_with_cuda() else "TensorFlow sees no GPU here")
        raise UserError(f"--device cuda: {build}; {_OR_CPU}")
    if requested == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    return "cuda" if requested != "cpu" and gpus else "cpu"


def _device_jax(requested: str) -> str:
    import jax

    if requested == "cpu":
        # Before JAX starts its backends (setup does not): the GPU one never starts, nor
        # preallocates its memory. Had they started, the default device still moves work.
        jax.config.update("jax_platforms", "cpu")
        if jax.default_backend() != "cpu":
            jax.config.update("jax_default_device", jax.devices("cpu")[0])
        return "cpu"
    gpu = jax.default_backend() in ("gpu", "cuda")
    if requested == "cuda" and not gpu:
        plugin = any(importlib.util.find_spec(name) is not None
                     for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"))
        why = ("JAX sees no GPU here" if plugin else
               'this jaxlib is CPU-only; on Linux with CUDA, `pip install "jax[cuda12]"` adds '
               "the GPU plugin")
        raise UserError(f"--device cuda: {why}; {_OR_CPU}")
    return "cuda" if gpu else "cpu"


def _device_torch(requested: str) -> str:
    import torch
    from keras.src.backend.torch import core

    gpu = torch.cuda.is_available()
    if requested == "cuda" and not gpu:
        why = ("this PyTorch is a CPU-only build; a CUDA build of torch can use the GPU"
               if torch.version.cuda is None else "PyTorch sees no CUDA GPU here")
        raise UserError(f"--device cuda: {why}; {_OR_CPU}")
    device = "cuda" if requested != "cpu" and gpu else "cpu"
    # Keras reads KERAS_TORCH_DEVICE once, when it is imported, into core.DEFAULT_DEVICE (and
    # takes any GPU without it); Keras is imported before the job's device is known, so set
    # what the variable would have set. Every tensor Keras creates goes there (get_device()).
    os.environ["KERAS_TORCH_DEVICE"] = core.DEFAULT_DEVICE = device
    return device


# ----------------------------------------------------------------------------- setup


def setup(threads: int, seed: int, deterministic: bool) -> dict:
    """Threads, seeds and deterministic mode, before any tensor work. Returns version facts for
    the record's environment; `compiled` is a sentence saying how the training step runs (a
    string on every backend and in torch_impl.train.setup)."""
    facts = {"tensorflow": _setup_tensorflow, "jax": _setup_jax,
             "torch": _setup_torch}[BACKEND](threads, deterministic)
    keras.utils.set_random_seed(seed)  # Python, numpy, Keras' seed generator (and torch's)
    return {"framework": "keras", "keras": keras.__version__, "keras_backend": BACKEND,
            "deterministic": deterministic, **facts}


def _setup_tensorflow(threads: int, deterministic: bool) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return {"tensorflow": tf.__version__,
            "compiled": "XLA off (determinism)" if deterministic else "XLA auto"}


def _setup_jax(threads: int, deterministic: bool) -> dict:
    """XLA reads XLA_FLAGS and sizes its CPU thread pool when JAX starts its backends, at the
    first array operation: importing Keras does not start them, so both can still be set here.
    XLA has no thread-count flag: its pool takes one thread per CPU the process may run on, so
    the process is pinned to `threads` of them. The CPU backend is deterministic as it is;
    on a GPU, XLA needs --xla_gpu_deterministic_ops (some ops then run slower)."""
    import jax
    import jaxlib

    if hasattr(os, "sched_setaffinity"):  # Linux; elsewhere XLA takes every CPU
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
    if deterministic:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    # jit_compile="auto" is jax.jit unless a layer opts out: Keras' RandomTranslation,
    # RandomRotation and RandomZoom (--augment crop, rotate, zoom) do, and then it runs eagerly
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "compiled": "XLA (jax.jit); eager with augment crop, rotate or zoom",
            "xla_cpu_threads": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count()),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _setup_torch(threads: int, deterministic: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic CUDA
    torch.use_deterministic_algorithms(deterministic)
    # jit_compile="auto" is eager on this backend: Keras uses no torch.compile unless asked
    return {"torch": torch.__version__, "compiled": "eager (no torch.compile)"}


def set_tf32(mode: str) -> bool:
    """TF32 for float32 matrix products and convolutions on Ampere and newer GPUs: off in
    `reference`, on in `fast`, the same rule in every framework. TensorFlow and JAX allow it by
    default; each backend is set here (TensorFlow's execution flag, JAX's default matmul
    precision, PyTorch's matmul and cuDNN flags). Returns whether TF32 is allowed (it only
    takes effect on a GPU that has it)."""
    enabled = mode == "fast"
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(enabled)
    elif BACKEND == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision",
                          "tensorfloat32" if enabled else "float32")
    else:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
    return enabled


# ----------------------------------------------------------------------------- data feed


def batches(*arrays: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """In-memory batches in the given order, fed by the calling thread alone (tensorflow backend).

    `fit(x_numpy)` builds an autotuned tf.data pipeline whose background threads compete with
    the compute threads: on 2 cores its throughput flips between two modes from one fit call to
    the next (measured ~395 vs ~550 img/s for cifar10_cnn); one private thread, autotune off,
    keeps it at the fast one (benchmarks/overhead.py).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    data = arrays[0] if len(arrays) == 1 else arrays
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).with_options(options)


def feed(*arrays: np.ndarray, batch_size: int) -> dict:
    """fit's (x, y) or predict's (x) data arguments: the tf.data batches above on tensorflow;
    the arrays themselves on jax and torch (Keras slices them in order: fit's shuffle=False)."""
    if BACKEND == "tensorflow":
        return {"x": batches(*arrays, batch_size=batch_size)}
    return {**dict(zip(("x", "y"), arrays)), "batch_size": batch_size}


class BatchTimer(keras.callbacks.Callback):
    """Per-batch wall-clock times (for the first-epoch rule) and the progress bar."""

    def __init__(self, bar, batch_seconds: list[float]):
        super().__init__()
        self.bar, self.batch_seconds = bar, batch_seconds

    def on_train_batch_begin(self, batch, logs=None):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batch_seconds.append(time.perf_counter() - self._t0)
        if self.bar is not None:
            self.bar.update(1)


class KerasTrainer:
    """The common.loop.Trainer of Keras (any backend): a compiled model fed the mini-batches in
    the order common.loop gives (the same as PyTorch's). Mirrors torch_impl.train.TorchTrainer."""

    name = "keras"

    def __init__(self, cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: keras.Model | None = None):
        """`model`: train this ready model instead of the config's CNN (transfer learning)."""
        self.tf32 = set_tf32(cfg.mode)  # before anything computes; recorded by the worker
        self.device = device
        self.batch_size = cfg.batch_size
        self.eval_batch_size = EVAL_BATCH_SIZE
        # --precision: Keras' mixed-precision policy (layers built from here on compute in
        # bfloat16/float16 and keep float32 weights; compile adds loss scaling for float16),
        # the counterpart of torch.autocast in torch_impl.
        keras.mixed_precision.set_global_policy(cfg.precision)
        if model is None:  # augmentation layers in front, active in training only
            front = build_augmenter(cfg.augment, cfg.seed, data.input_shape, device)
            model = build_model(cfg.arch, data.input_shape, data.num_classes, front)
        self.model = model
        if weights is not None:
            load_weights(self.model, weights)
        self.params = count_params(self.model)
        # --mode fast: the options measured fastest for this CPU kind or GPU (common.machine)
        self.fast_options = fast_options("keras", device) if cfg.mode == "fast" else {}
        self.model.compile(
            jit_compile=self.fast_options.get("jit_compile", "auto"),
            optimizer=make_optimizer(cfg.optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        self.batch_seconds: list[float] = []

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, bar=None) -> tuple[float, float]:
        self.batch_seconds = []
        history = self.model.fit(**feed(x[order], y[order], batch_size=self.batch_size),
                                 epochs=1, shuffle=False, verbose=0,
                                 callbacks=[BatchTimer(bar, self.batch_seconds)])
        return float(history.history["loss"][0]), float(history.history["accuracy"][0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        logits = self.model.predict(**feed(x, batch_size=self.eval_batch_size), verbose=0)
        return np.asarray(logits, dtype=np.float32)  # mixed precision: float32 like torch

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Logits of one small batch (x: (n, H, W, C) float32) in one call, through Keras'
        compiled predict step without predict()'s dataset and batching loop: the latency a
        deployed model has (the torch trainer's single-batch predict)."""
        return np.asarray(keras.ops.convert_to_numpy(self.model.predict_on_batch(x)),
                          dtype=np.float32)

    def get_weights(self) -> list:
        return self.model.get_weights()

    def set_weights(self, weights: list) -> None:
        self.model.set_weights(weights)

    def set_lr(self, lr: float) -> None:
        set_lr(self.model.optimizer, lr)


def make_trainer(cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: keras.Model | None = None) -> KerasTrainer:
    """The common.loop.Trainer of this framework for `cfg` and the prepared data's shape and
    classes: a new model from cfg.arch (with `weights`, common.init's shared start, or the
    framework's own init for None), or `model` when given (transfer learning); on `device`,
    with TF32 set by cfg.mode (the trainer calls set_tf32). Mirrors torch_impl.train.make_trainer."""
    return KerasTrainer(cfg, data, weights, device, model)
