"""The Keras Trainer that common.loop drives (run by common.worker in a Keras process).
Mirrors torch_impl/train.py.

compile / fit / predict: each epoch is one `fit(epochs=1)` call on the batches in the epoch order
from common.splits (shuffle=False), so Keras sees the same mini-batches as PyTorch; common.loop
drives the epochs, the timing and the callbacks.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from common.config import RunConfig
from common.errors import UserError
from common.loop import EVAL_BATCH_SIZE
from common.worker import PreparedData
from keras_impl.augment import build_augmenter
from keras_impl.model import build_model, count_params, load_weights
from keras_impl.optim import make_optimizer, set_lr


def resolve_device(requested: str) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "cuda" and not gpus:
        build = ("this TensorFlow is a CPU-only build (tensorflow-cpu); on Linux with CUDA, "
                 "`pip install tensorflow[and-cuda]` can use the GPU"
                 if not tf.test.is_built_with_cuda() else "TensorFlow sees no GPU here")
        raise UserError(f"--device cuda: {build}; or use --device cpu or auto")
    if requested == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    return "cuda" if requested != "cpu" and gpus else "cpu"


def setup(threads: int, seed: int, deterministic: bool) -> dict:
    """Threads, seeds and deterministic mode, before any tensor work. Returns version facts."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return {"framework": "keras", "keras": keras.__version__, "tensorflow": tf.__version__,
            "deterministic": deterministic,
            "compiled": "XLA off (determinism)" if deterministic else "XLA auto"}


def batches(*arrays: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """In-memory batches in the given order, fed by the calling thread alone.

    `fit(x_numpy)` builds an autotuned tf.data pipeline whose background threads compete with
    the compute threads: on 2 cores its throughput flips between two modes from one fit call to
    the next (measured ~395 vs ~550 img/s for cifar10_cnn); one private thread, autotune off,
    keeps it at the fast one (benchmarks/overhead.py).
    """
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    data = arrays[0] if len(arrays) == 1 else arrays
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).with_options(options)


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
    name = "keras"

    def __init__(self, cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: keras.Model | None = None):
        """`model`: train this ready model instead of the config's CNN (transfer learning)."""
        self.device = device
        self.batch_size = cfg.batch_size
        self.eval_batch_size = EVAL_BATCH_SIZE
        if model is None:  # augmentation layers in front, active in training only
            front = build_augmenter(cfg.augment, cfg.seed, data.input_shape, device)
            model = build_model(cfg.arch, data.input_shape, data.num_classes, front)
        self.model = model
        if weights is not None:
            load_weights(self.model, weights)
        self.params = count_params(self.model)
        self.model.compile(
            optimizer=make_optimizer(cfg.optimizer),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        self.batch_seconds: list[float] = []

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, bar=None) -> tuple[float, float]:
        self.batch_seconds = []
        history = self.model.fit(batches(x[order], y[order], batch_size=self.batch_size),
                                 epochs=1, shuffle=False, verbose=0,
                                 callbacks=[BatchTimer(bar, self.batch_seconds)])
        return float(history.history["loss"][0]), float(history.history["accuracy"][0])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(batches(x, batch_size=self.eval_batch_size), verbose=0)

    def get_weights(self) -> list:
        return self.model.get_weights()

    def set_weights(self, weights: list) -> None:
        self.model.set_weights(weights)

    def set_lr(self, lr: float) -> None:
        set_lr(self.model.optimizer, lr)


def make_trainer(cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: keras.Model | None = None) -> KerasTrainer:
    return KerasTrainer(cfg, data, weights, device, model)
