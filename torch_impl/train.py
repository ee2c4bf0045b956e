"""PyTorch training process: `python -m torch_impl.train JOB.json`. Mirrors keras_impl/train.py.

One `run_epoch` serves training and evaluation. Batches are gathered from in-memory tensors with
the epoch order from common.splits (no DataLoader, no per-image Python work); common.loop drives
the epochs, the timing and the callbacks.
"""

from __future__ import annotations

import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from common.config import RunConfig
from common.errors import UserError
from common.worker import PreparedData, worker_main
from torch_impl.augment import build_augmenter
from torch_impl.model import build_model, count_params, load_weights
from torch_impl.optim import make_optimizer, set_lr
from torch_impl.transfer import TransferModel, make_transfer_model

EVAL_BATCH_SIZE = 512  # inference only: large batches, same value on both sides


def resolve_device(requested: str) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu or auto")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def setup(cfg: RunConfig) -> dict:
    """Threads, seeds and deterministic mode, before any tensor work. Returns version facts."""
    torch.set_num_threads(cfg.threads)
    torch.set_num_interop_threads(cfg.threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic CUDA
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.manual_seed(cfg.seed)
    import torchvision  # noqa: PLC0415  (version fact only)

    return {"framework": "torch", "torch": torch.__version__, "torchvision": torchvision.__version__,
            "deterministic": cfg.deterministic, "compiled": False}


class TorchTrainer:
    name = "torch"

    def __init__(self, cfg: RunConfig, data: PreparedData, weights: list | None,
                 model: torch.nn.Module | None = None):
        """`model`: train this ready model instead of the config's CNN (transfer learning)."""
        self.device = resolve_device(cfg.device)
        self.batch_size = cfg.batch_size
        self.eval_batch_size = EVAL_BATCH_SIZE
        if model is None:
            model = build_model(cfg.arch, data.input_shape, data.num_classes)
        self.model = model.to(self.device)
        if weights is not None:
            load_weights(self.model, weights)
        self.params = count_params(self.model)
        # frozen parameters (transfer learning) stay out of the optimizer
        self.optimizer = make_optimizer([p for p in self.model.parameters() if p.requires_grad],
                                        cfg.optimizer)
        self.augment = build_augmenter(cfg.augment, cfg.seed, self.device)
        self.batch_seconds: list[float] = []
        self._tensors: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """NHWC numpy -> NCHW tensor on the device, converted once per array, not every epoch.

        The array is kept alongside so its id cannot be reused by another array.
        """
        if id(array) not in self._tensors:
            t = torch.from_numpy(array)
            if t.ndim == 4:
                t = t.permute(0, 3, 1, 2).contiguous()
            self._tensors[id(array)] = (array, t.to(self.device))
        return self._tensors[id(array)][1]

    def run_epoch(self, x: torch.Tensor, y: torch.Tensor | None, order: torch.Tensor | None,
                  bar=None) -> tuple[float, float] | torch.Tensor:
        """Training pass when `order` is given (returns mean loss, accuracy), else logits."""
        training = order is not None
        self.model.train(training)
        n, bs = len(x), (self.batch_size if training else self.eval_batch_size)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        outputs: list[torch.Tensor] = []
        if training:
            self.batch_seconds = []
        with torch.set_grad_enabled(training):
            for start in range(0, n, bs):
                if not training:
                    outputs.append(self.model(x[start:start + bs]))
                    continue
                t0 = time.perf_counter()
                idx = order[start:start + bs]
                xb, yb = x[idx], y[idx]
                if self.augment is not None:
                    xb = self.augment(xb)
                logits = self.model(xb)
                loss = F.cross_entropy(logits, yb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
                self.batch_seconds.append(time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
        if training:
            return float(loss_sum) / n, float(correct) / n
        return torch.cat(outputs)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, bar=None) -> tuple[float, float]:
        return self.run_epoch(self._tensor(x), self._tensor(y), torch.from_numpy(order).to(self.device), bar)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.run_epoch(self._tensor(x), None, None).cpu().numpy()

    def get_weights(self) -> dict:
        return copy.deepcopy(self.model.state_dict())

    def set_weights(self, weights: dict) -> None:
        self.model.load_state_dict(weights)

    def set_lr(self, lr: float) -> None:
        set_lr(self.optimizer, lr)


def make_trainer(cfg: RunConfig, data: PreparedData, weights: list | None,
                 model: torch.nn.Module | None = None) -> TorchTrainer:
    return TorchTrainer(cfg, data, weights, model)


def make_transfer(cfg: RunConfig, data: PreparedData) -> TransferModel:
    # augmentation is the trainer's, on training batches (used when phase 1 runs on images)
    return make_transfer_model(cfg, data, resolve_device(cfg.device))


def main() -> None:
    worker_main("torch", setup, make_trainer, make_transfer)


if __name__ == "__main__":
    main()
