"""The PyTorch Trainer that common.loop drives (run by common.worker in a PyTorch process).
Mirrors keras_impl/train.py.

Batches are gathered from in-memory tensors with the epoch order from common.splits (no
DataLoader, no per-image Python work); common.loop drives the epochs, the timing and the
callbacks.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from common.config import RunConfig
from common.data.prepare import PreparedData
from common.errors import UserError
from common.loop import EVAL_BATCH_SIZE
from common.machine import fast_options
from torch_impl.augment import build_augmenter
from torch_impl.model import build_model, count_params, load_weights
from torch_impl.optim import make_optimizer, set_lr


def resolve_device(requested: str) -> str:
    """'cpu' | 'cuda' | 'auto' -> 'cpu' | 'cuda'. Raises UserError for cuda without a CUDA GPU."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu or auto")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def setup(threads: int, seed: int, deterministic: bool) -> dict:
    """Threads, seeds and deterministic mode, before any tensor work. Returns version facts."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic CUDA
    # torch.use_deterministic_algorithms(mode) is this switch plus an import of torch._inductor
    # (1.3 s of every process's start, measured) only to pass the mode on to torch.compile,
    # which this suite never runs (torch/__init__.py, 2.14); Keras' torch backend imports
    # torch._inductor anyway, so keras_impl calls the public function.
    torch._C._set_deterministic_algorithms(deterministic)
    torch.manual_seed(seed)

    # `compiled` says how the training step runs, as a sentence on every side (keras_impl.train)
    return {"framework": "torch", "torch": torch.__version__,
            "torchvision": importlib.metadata.version("torchvision"),  # not imported: ~0.3 s
            "deterministic": deterministic, "compiled": "eager (no torch.compile)"}


AUTOCAST = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}


def set_tf32(mode: str) -> bool:
    """TF32 for float32 matrix products and convolutions on Ampere and newer GPUs: off in
    `reference`, on in `fast`, the same rule in every framework. PyTorch's own defaults differ
    by op (matmul off, cuDNN convolutions on); this sets both. Returns whether TF32 is allowed
    (it only takes effect on a GPU that has it)."""
    enabled = mode == "fast"
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return enabled


class TorchTrainer:
    """`--mode fast`: the options common.machine.fast_options measured fastest for the device
    (channels_last memory format, oneDNN's and cuDNN's preferred conv layout, by default:
    1.12x the NCHW img/s on a 2-core AMD EPYC, 1.4-1.6x on an earlier CPU; benchmarks/overhead.py,
    docs/timing.md) and, on a GPU,
    cuDNN autotuning. `--precision mixed_*`: torch.autocast around forward and loss (and a
    GradScaler for float16), the counterpart of Keras' mixed-precision policy."""

    name = "torch"

    def __init__(self, cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: torch.nn.Module | None = None):
        """`model`: train this ready model instead of the config's CNN (transfer learning)."""
        self.tf32 = set_tf32(cfg.mode)  # before anything computes; recorded by the worker
        self.device = device
        self.batch_size = cfg.batch_size
        self.eval_batch_size = EVAL_BATCH_SIZE
        if model is None:  # augmentation modules in front, active in training only
            front = build_augmenter(cfg.augment, cfg.seed, data.input_shape, device)
            model = build_model(cfg.arch, data.input_shape, data.num_classes, front)
        # --mode fast: the options measured fastest for this CPU kind or GPU (common.machine)
        self.fast_options = fast_options("torch", device) if cfg.mode == "fast" else {}
        self.memory_format = (torch.channels_last if self.fast_options.get("channels_last")
                              else torch.contiguous_format)
        self.model = model.to(device, memory_format=self.memory_format)
        if weights is not None:
            load_weights(self.model, weights)
        if cfg.mode == "fast" and device == "cuda":
            torch.backends.cudnn.benchmark = True
        self.autocast_dtype = AUTOCAST.get(cfg.precision)
        self.scaler = torch.amp.GradScaler(device, enabled=cfg.precision == "mixed_float16")
        self.params = count_params(self.model)
        # frozen parameters (transfer learning) stay out of the optimizer
        self.optimizer = make_optimizer([p for p in self.model.parameters() if p.requires_grad],
                                        cfg.optimizer)
        self.batch_seconds: list[float] = []
        self._tensors: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """NHWC numpy -> NCHW tensor on the device, converted once per array, not every epoch.

        The array is kept alongside so its id cannot be reused by another array.
        """
        if id(array) not in self._tensors:
            t = torch.from_numpy(array)
            if t.ndim == 4:  # NHWC data is already channels_last memory: no copy in fast mode
                t = t.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
            self._tensors[id(array)] = (array, t.to(self.device))
        return self._tensors[id(array)][1]

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, bar=None) -> tuple[float, float]:
        xt, yt = self._tensor(x), self._tensor(y)
        order_t = torch.from_numpy(order).to(self.device)
        self.model.train()
        self.batch_seconds = []
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for start in range(0, len(xt), self.batch_size):
            t0 = time.perf_counter()
            idx = order_t[start:start + self.batch_size]
            xb, yb = xt[idx].contiguous(memory_format=self.memory_format), yt[idx]
            with self._autocast():
                logits = self.model(xb)
                loss = F.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()  # a no-op scaler unless float16
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            self.batch_seconds.append(time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
        return float(loss_sum) / len(xt), float(correct) / len(xt)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        xt = self._tensor(x)
        self.model.eval()
        with self._autocast():
            logits = [self.model(xt[start:start + self.eval_batch_size]
                                 .contiguous(memory_format=self.memory_format))
                      for start in range(0, len(xt), self.eval_batch_size)]
        return torch.cat(logits).float().cpu().numpy()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """Logits of one small batch (x: (n, H, W, C) float32, n <= the evaluation batch) in one
        call: the latency a deployed model has (keras' Model.predict_on_batch on the Keras side)."""
        return self.predict(x)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def get_weights(self) -> dict:
        return copy.deepcopy(self.model.state_dict())

    def set_weights(self, weights: dict) -> None:
        self.model.load_state_dict(weights)

    def set_lr(self, lr: float) -> None:
        set_lr(self.optimizer, lr)


def make_trainer(cfg: RunConfig, data: PreparedData, weights: list | None, device: str,
                 model: torch.nn.Module | None = None) -> TorchTrainer:
    """The common.loop.Trainer of this framework for `cfg` and the prepared data's shape and
    classes: a new model from cfg.arch (with `weights`, common.init's shared start, or the
    framework's own init for None), or `model` when given (transfer learning); on `device`,
    with TF32 set by cfg.mode (the trainer calls set_tf32). Mirrors keras_impl.train.make_trainer."""
    return TorchTrainer(cfg, data, weights, device, model)
