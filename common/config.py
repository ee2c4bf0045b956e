"""The one frozen run configuration, shared by compare.py and every framework process.

A `RunConfig` is fully resolved (no None left for a framework to fill with its own default) and
is saved with every result record, so a number can always be traced to what produced it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from common.errors import UserError
from common.specs import ArchSpec
from common.transfer import PIPELINES, TransferSpec

DEVICES = ("auto", "cpu", "cuda")
# reference: deterministic float32 as each framework's textbook code runs it (the default);
# fast: each framework's fastest measured settings for the device (README, "Throughput").
MODES = ("reference", "fast")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras' policy names
INITS = ("shared", "native")
# --normalize: how inputs are scaled, one implementation for both frameworks (common.data.prepare)
NORMALIZE = ("standardize", "unit", "symmetric", "imagenet", "none")
VALIDATE_ON = ("val", "test")


LR_SCHEDULES = ("step:N:FACTOR", "exp:GAMMA", "cosine")


def parse_lr_schedule(text: str) -> tuple:
    """'step:N:F' -> ('step', N, F); 'exp:G' -> ('exp', G); 'cosine' -> ('cosine',). Raises
    UserError (one line) for anything else."""
    kind, *values = text.strip().split(":")
    try:
        if kind == "step" and len(values) == 2 and int(values[0]) >= 1 and float(values[1]) > 0:
            return ("step", int(values[0]), float(values[1]))
        if kind == "exp" and len(values) == 1 and float(values[0]) > 0:
            return ("exp", float(values[0]))
        if kind == "cosine" and not values:
            return ("cosine",)
    except ValueError:
        pass
    raise UserError(f"--lr-schedule {text!r}: give one of {', '.join(LR_SCHEDULES)} (e.g. "
                    "step:10:0.5 halves the learning rate every 10 epochs)")


def scheduled_lr(schedule: tuple, base: float, epoch: int, epochs: int) -> float:
    """The learning rate of `epoch` (1-based) of `epochs` under `schedule`, set before the epoch
    and held through it: PyTorch's per-epoch schedulers' closed forms after epoch - 1 steps.
    step: StepLR(step_size=N, gamma=F), base * F^floor((epoch - 1) / N); exp: ExponentialLR(G),
    base * G^(epoch - 1); cosine: CosineAnnealingLR(T_max=epochs, eta_min=0),
    base * (1 + cos(pi * (epoch - 1) / epochs)) / 2 (it reaches 0 after the last epoch)."""
    done = epoch - 1
    if schedule[0] == "step":
        return base * schedule[2] ** (done // schedule[1])
    if schedule[0] == "exp":
        return base * schedule[1] ** done
    if schedule[0] == "cosine":
        return base * (1 + math.cos(math.pi * done / epochs)) / 2
    raise ValueError(f"common.loop: no lr schedule {schedule[0]!r}")



@dataclass(frozen=True)
class Callbacks:
    """One semantics for both frameworks (documented in the README):

    - an epoch improves when val_loss < best - min_delta (absolute threshold);
    - early stopping stops after `early_stopping` consecutive epochs without improvement;
    - reduce-on-plateau multiplies the lr by `factor` (not below `min_lr`) after `patience`
      consecutive epochs without improvement, then waits another `patience` epochs;
    - restore_best puts back the weights of the best epoch before testing;
    - lr_schedule (--lr-schedule) sets each epoch's learning rate before it starts
      (scheduled_lr: PyTorch's per-epoch schedulers' closed forms);
    - target_accuracy (--target-accuracy) only observes: the report gives the training seconds
      until the validation accuracy first reached it (MLPerf's time to quality); it stops nothing.
    """

    restore_best: bool = True
    early_stopping: int | None = None
    reduce_lr: tuple[float, int, float] | None = None  # (factor, patience, min_lr)
    min_delta: float = 0.0
    lr_schedule: tuple | None = None  # ('step', N, F) | ('exp', G) | ('cosine',)
    target_accuracy: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "Callbacks":
        """Callbacks from their JSON form (`reduce_lr`, `lr_schedule` back to tuples)."""
        data = dict(data)
        for key in ("reduce_lr", "lr_schedule"):  # JSON has lists, not tuples
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class RunConfig:
    """One run's fully resolved settings (common.plan builds it from the flags).

    Every field has its final value (no None for a framework to fill in); sizes are counts of
    images, `image_size` pixels. Raises UserError on construction when a value is out of range or
    two values contradict each other (the checks in __post_init__)."""
    task: str
    model: str
    arch: ArchSpec
    optimizer: dict  # full hyperparameters from common.optim.resolve_optimizer
    epochs: int
    batch_size: int
    seed: int = 0  # weight init, epoch order, dropout
    split_seed: int = 0  # train/validation split (kept fixed across --repeats)
    train_size: int | None = None  # None: everything left after the validation set
    val_size: int = 5000
    restore_best: bool = True  # restore the weights with the best validation loss before testing
    init: str = "shared"
    augment: tuple[str, ...] = ()  # common.augment names, applied to training batches only
    deterministic: bool = True  # the frameworks' deterministic modes (disables Keras' XLA)
    mode: str = "reference"  # MODES; fast also turns deterministic off
    precision: str = "float32"  # PRECISIONS: Keras' mixed-precision policy / torch.autocast
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    device: str = "auto"
    data_dir: str | None = None
    image_size: int | None = None  # resize images to this square size (own data, transfer)
    image_dir: str | None = None  # images of a csv:FILE task
    cache_dir: str | None = None
    download: bool = True
    pipeline: str = "cnn"  # "cnn": the preset CNN; "transfer": a pretrained backbone + new head
    transfer: TransferSpec | None = None  # set exactly when pipeline == "transfer"
    normalize: str = "standardize"  # NORMALIZE
    validate_on: str = "val"  # VALIDATE_ON: "test" monitors the test set (val_size is then 0)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.threads >= 1, "--threads must be at least 1"),
            (self.val_size >= 0, "--val-size must be 0 (no validation set) or more"),
            (self.normalize in NORMALIZE, f"--normalize must be one of: {', '.join(NORMALIZE)}"),
            (self.validate_on in VALIDATE_ON,
             f"--validate-on must be one of: {', '.join(VALIDATE_ON)}"),
            (self.validate_on == "val" or self.val_size == 0,
             "--validate-on test monitors the test set: it takes no validation split "
             "(--val-size 0)"),
            (self.val_size > 0 or self.validate_on == "test" or not self.restore_best,
             "--val-size 0 tests the last epoch: there is no best validation epoch to restore"),
            (self.train_size is None or self.train_size >= 1, "--train-size must be at least 1"),
            (self.device in DEVICES, f"--device must be one of: {', '.join(DEVICES)}"),
            (self.mode in MODES, f"--mode must be one of: {', '.join(MODES)}"),
            (self.precision in PRECISIONS, f"--precision must be one of: {', '.join(PRECISIONS)}"),
            (self.mode == "reference" or not self.deterministic,
             "--mode fast uses non-deterministic kernels: it cannot be deterministic"),
            (self.init in INITS, f"--init must be one of: {', '.join(INITS)}"),
            (self.pipeline in PIPELINES, f"--pipeline must be one of: {', '.join(PIPELINES)}"),
            ((self.transfer is not None) == (self.pipeline == "transfer"),
             "a transfer pipeline needs its TransferSpec, and only it has one"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict:
        """The config as JSON-able nested dicts (dataclasses.asdict); from_dict reverses it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """A RunConfig from its to_dict form (ArchSpec and TransferSpec rebuilt). Raises UserError
        as the constructor does."""
        data = dict(data)
        arch = ArchSpec.from_dict(data.pop("arch"))
        data["augment"] = tuple(data.get("augment", ()))
        if data.get("transfer") is not None:
            data["transfer"] = TransferSpec(**data["transfer"])
        return cls(arch=arch, **data)
