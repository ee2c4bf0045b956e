"""What one framework process does, top to bottom: config -> data -> model -> train -> test -> record.

`keras_impl.train.main` and `torch_impl.train.main` call `run_job` with their own Trainer factory,
so both processes load the same data, split and initial weights, and write the same record schema.
Each framework runs in its own process: this module never imports a framework.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.config import RunConfig
from common.data import load_dataset
from common.errors import UserError
from common.init import initial_weights
from common.loop import Callbacks, FitResult, Trainer, fit
from common.metrics import confusion, score, worst_predictions
from common.records import base_environment, write_json_atomic
from common.specs import count_params
from common.splits import make_split
from common.transfer import EVAL_BATCH_SIZE, PROBE_IMAGES, features_cacheable, is_path, probe_path


@dataclass(frozen=True)
class PreparedData:
    """Float32 NHWC arrays, standardised per channel, split, ready to feed in memory."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    split_hash: str
    channel_mean: tuple[float, ...] = ()  # of the training split, in [0, 1] units
    channel_std: tuple[float, ...] = ()


def prepare_data(cfg: RunConfig) -> PreparedData:
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
    # Per-channel standardisation with statistics of the training split only (no peeking at
    # validation or test data): SGD from a Glorot start learns far faster on centred inputs.
    train = ds.x_train[split.train]
    mean = train.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
    std = train.std(axis=(0, 1, 2), dtype=np.float64) / 255.0
    if cfg.pipeline == "transfer":  # [0, 1] RGB: each backbone normalises its own way
        mean, std = np.zeros_like(mean), np.ones_like(std)

    def scale(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / np.float32(255.0) - mean.astype(np.float32))
                / std.astype(np.float32))

    return PreparedData(
        x_train=scale(ds.x_train[split.train]), y_train=ds.y_train[split.train].astype(np.int64),
        x_val=scale(ds.x_train[split.val]), y_val=ds.y_train[split.val].astype(np.int64),
        x_test=scale(ds.x_test), y_test=ds.y_test.astype(np.int64),
        input_shape=tuple(int(d) for d in ds.x_train.shape[1:]),
        num_classes=len(ds.class_names), class_names=ds.class_names, split_hash=split.hash,
        channel_mean=tuple(mean.round(6).tolist()), channel_std=tuple(std.round(6).tolist()),
    )


@dataclass(frozen=True)
class Job:
    """What compare.py hands a framework process: the config and where the record goes."""

    config: RunConfig
    record_path: str
    repeat: int = 0
    callbacks: Callbacks = Callbacks()

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "record_path": self.record_path,
                "repeat": self.repeat, "callbacks": self.callbacks.__dict__}

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        cb = dict(data.get("callbacks", {}))
        if cb.get("reduce_lr") is not None:
            cb["reduce_lr"] = tuple(cb["reduce_lr"])
        return cls(config=RunConfig.from_dict(data["config"]), record_path=data["record_path"],
                   repeat=data.get("repeat", 0), callbacks=Callbacks(**cb))


# (cfg, data, initial weights or None, model=None): `model`, when given, is trained instead of
# the config's CNN (transfer learning)
TrainerFactory = Callable[..., Trainer]
# (cfg, data) -> {keras,torch}_impl.transfer.TransferModel
TransferFactory = Callable[[RunConfig, PreparedData], Any]


def run_job(framework: str, job: Job, make_trainer: TrainerFactory, environment: dict,
            make_transfer: TransferFactory | None = None) -> dict:
    """Train and test one framework; write and return its record."""
    cfg = job.config
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    data_seconds = time.perf_counter() - t0

    transfer: dict = {}
    if cfg.pipeline == "transfer":
        trainer, result, transfer = fit_transfer(job, data, make_trainer, make_transfer)
        build_seconds = transfer.pop("model_build_seconds")
    else:
        t0 = time.perf_counter()
        weights = (initial_weights(cfg.arch, data.input_shape, data.num_classes, cfg.seed)
                   if cfg.init == "shared" else None)
        trainer = make_trainer(cfg, data, weights)
        build_seconds = time.perf_counter() - t0

        result = fit(trainer, data.x_train, data.y_train, data.x_val, data.y_val,
                     epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                     lr=cfg.optimizer["lr"], callbacks=job.callbacks)
    test_logits = trainer.predict(data.x_test)
    test = score(test_logits, data.y_test)
    record = {
        "task": cfg.task,
        "framework": framework,
        "model": cfg.model,
        "repeat": job.repeat,
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "callbacks": job.callbacks.__dict__,
        "params": trainer.params,
        "expected_params": count_params(cfg.arch, data.input_shape, data.num_classes),
        "train_size": len(data.x_train),
        "val_size": len(data.x_val),
        "test_size": len(data.x_test),
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "train_seconds": result.train_seconds,
        "epoch_seconds": result.epoch_seconds,
        "first_epoch_overhead_seconds": result.first_epoch_overhead_seconds,
        "excluded_from_timing": {"data_loading_seconds": data_seconds,
                                 "model_build_seconds": build_seconds},
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "diverged": result.diverged,
        "history": result.history,
        "confusion_matrix": confusion(test_logits, data.y_test, data.num_classes),
        "worst_test_predictions": worst_predictions(test_logits, data.y_test, k=10),
        "class_names": list(data.class_names),
        "split_hash": data.split_hash,
        "input_standardisation": {"mean": data.channel_mean, "std": data.channel_std},
        "environment": {**base_environment(cfg.threads, trainer.device), **environment},
    }
    record.update(transfer)  # transfer runs: whole-model params, both phases' timing, facts
    write_json_atomic(job.record_path, record)
    return record


def fit_transfer(job: Job, data: PreparedData, make_trainer: TrainerFactory,
                 make_transfer: TransferFactory | None) -> tuple[Trainer, FitResult, dict]:
    """The two transfer-learning phases, each driven by common.loop.fit with the framework's
    ordinary Trainer (the callbacks apply within each phase):

    1. the frozen base (BatchNorm in inference mode) and a new head at the optimizer's lr; the
       base's features are computed once and the head trains on them, unless augmentation makes
       the inputs differ every epoch (then on images, base frozen);
    2. fine-tuning: the top `fine_tune_layers` blocks of the base unfrozen, BatchNorm still in
       inference mode, at `fine_tune_lr` (skipped when fine_tune_epochs is 0).

    Returns a trainer that predicts images, the merged result (each history entry names its
    phase; epochs are numbered across both) and the record's transfer fields.
    """
    cfg, spec = job.config, job.config.transfer
    if make_transfer is None:
        raise UserError("this worker has no transfer-learning support")
    t0 = time.perf_counter()
    model = make_transfer(cfg, data)
    build_seconds = time.perf_counter() - t0
    facts: dict = {"weights_source": model.weights_source,
                   "preprocessing": asdict(model.preprocessing), "padding": model.padding_name}
    if is_path(spec.weights):  # the pretrained bases' features, for the agreement check
        path = probe_path(job.record_path)
        np.savez(path, **model.probe(data.x_test[:PROBE_IMAGES]))
        facts["feature_probe"] = path.name

    merged, phases = FitResult(), []

    def run_phase(phase: str, trainer: Trainer, x_train: np.ndarray, x_val: np.ndarray,
                  epochs: int, lr: float, blocks: int, trainable: int) -> None:
        trainer.name = f"{trainer.name} {phase}"  # progress lines say which phase
        trainer.eval_batch_size = EVAL_BATCH_SIZE
        result = fit(trainer, x_train, data.y_train, x_val, data.y_val, epochs=epochs,
                     batch_size=cfg.batch_size, seed=cfg.seed, lr=lr, callbacks=job.callbacks)
        offset = len(merged.history)
        best = offset + result.best_epoch if result.best_epoch else 0
        merged.history += [{**h, "epoch": h["epoch"] + offset, "phase": phase}
                           for h in result.history]
        merged.best_epoch = best or merged.best_epoch
        merged.stopped_early |= result.stopped_early
        merged.diverged |= result.diverged
        merged.first_epoch_overhead_seconds += result.first_epoch_overhead_seconds
        phases.append({"phase": phase, "inputs": "images" if x_train is data.x_train else
                       "cached features", "epochs": len(result.history), "lr": lr,
                       "blocks": blocks, "trainable_params": trainable, "best_epoch": best,
                       "seconds": result.train_seconds})

    cached = features_cacheable(cfg.augment)
    trainable = model.freeze(0)
    x_train, x_val, head_model, head_cfg, extraction = data.x_train, data.x_val, model.net, cfg, 0.0
    if cached:  # the frozen base is a fixed function: run it once, not once per epoch
        t0 = time.perf_counter()
        x_train, x_val = model.features(data.x_train), model.features(data.x_val)
        extraction = time.perf_counter() - t0
        head_model, head_cfg = model.head, replace(cfg, augment=())
    trainer = make_trainer(head_cfg, data, None, model=head_model)
    run_phase("head", trainer, x_train, x_val, cfg.epochs, cfg.optimizer["lr"], 0, trainable)
    if spec.fine_tune_epochs and not merged.diverged:
        trainable = model.freeze(spec.fine_tune_layers)
        fine_cfg = replace(cfg, optimizer={**cfg.optimizer, "lr": spec.fine_tune_lr})
        trainer = make_trainer(fine_cfg, data, None, model=model.net)
        run_phase("fine-tune", trainer, data.x_train, data.x_val, spec.fine_tune_epochs,
                  spec.fine_tune_lr, spec.fine_tune_layers, trainable)
    elif cached:  # the trained head on the whole network, to predict test images
        trainer = make_trainer(cfg, data, None, model=model.net)
        trainer.eval_batch_size = EVAL_BATCH_SIZE
    # the one-off feature extraction is training work: it counts, as overhead, not per epoch
    merged.first_epoch_overhead_seconds += extraction
    facts.update(features_cached=cached, feature_extraction_seconds=extraction, phases=phases)
    return trainer, merged, {
        "model": f"{spec.backbone} {spec.image_size}px, {model.preprocessing.name}",
        "params": model.params,  # base + head, BatchNorm statistics excluded
        "expected_params": None,
        "train_seconds": extraction + merged.train_seconds,
        "transfer": facts,
        "model_build_seconds": build_seconds,
    }


def worker_main(framework: str, setup: Callable[[RunConfig], dict], make_trainer: TrainerFactory,
                make_transfer: TransferFactory | None = None) -> None:
    """Entry point of `python -m {keras,torch}_impl.train JOB.json`.

    `setup` configures the framework (threads, determinism, device) before anything runs and
    returns its version facts for the record. User errors become one line and a non-zero exit.
    """
    try:
        job = Job.from_dict(json.loads(Path(sys.argv[1]).read_text()))
        environment = setup(job.config)
        run_job(framework, job, make_trainer, environment, make_transfer)
    except UserError as err:
        print(f"error: {framework}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
