"""Transfer learning in a framework process: the two phases of a transfer run (`fit_transfer`,
called by the train job) and the weight jobs the parent runs before any run (fetch, convert,
convert-imagenet, probe)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from common.config import Callbacks, RunConfig
from common.data.prepare import PreparedData
from common.files import write_arrays
from common.jobs import Job
from common.loop import TRANSFER_EVAL_BATCH_SIZE, FitResult, Trainer, fit
from common.transfer import PROBE_IMAGES, features_cacheable, is_path, probe_path
from common.worker.process import impl


@dataclass(frozen=True)
class RunOutcome:
    """What a run's model contributes to its record beyond the fit itself."""

    model: str
    params: int
    build_seconds: float
    expected_params: int | None = None
    extra_train_seconds: float = 0.0  # one-off feature extraction: training work, not an epoch
    transfer: dict | None = None


@dataclass(frozen=True)
class PhaseResult:
    """One transfer-learning phase: its fit result and the record's facts about it."""
    name: str  # head | fine-tune
    result: FitResult
    inputs: str  # images | cached features
    lr: float
    blocks: int  # top blocks of the base unfrozen
    trainable_params: int


def run_phase(name: str, trainer: Trainer, x_train: np.ndarray, x_val: np.ndarray,
              data: PreparedData, cfg: RunConfig, callbacks: Callbacks, epochs: int, lr: float,
              blocks: int, trainable: int, inputs: str) -> PhaseResult:
    """One transfer-learning phase: the ordinary epoch driver, callbacks within the phase."""
    trainer.name = f"{trainer.name} {name}"  # progress lines say which phase
    trainer.eval_batch_size = TRANSFER_EVAL_BATCH_SIZE
    result = fit(trainer, x_train, data.y_train, x_val, data.y_val, epochs=epochs,
                 batch_size=cfg.batch_size, seed=cfg.seed, lr=lr, callbacks=callbacks)
    return PhaseResult(name, result, inputs, lr, blocks, trainable)


def merge_phases(phases: list[PhaseResult]) -> tuple[FitResult, list[dict]]:
    """One FitResult over all phases (epochs numbered across them; each history entry names
    its phase) and the record's per-phase facts."""
    merged, facts, offset = FitResult(), [], 0
    for p in phases:
        r = p.result
        best = offset + r.best_epoch if r.best_epoch else 0
        merged.history += [{**h, "epoch": h["epoch"] + offset, "phase": p.name} for h in r.history]
        merged.best_epoch = best or merged.best_epoch
        merged.stopped_early |= r.stopped_early
        merged.diverged |= r.diverged
        merged.first_epoch_overhead_seconds += r.first_epoch_overhead_seconds
        facts.append({"phase": p.name, "inputs": p.inputs, "epochs": len(r.history), "lr": p.lr,
                      "blocks": p.blocks, "trainable_params": p.trainable_params,
                      "best_epoch": best, "seconds": r.train_seconds})
        offset += len(r.history)
    return merged, facts


def fit_transfer(framework: str, job: Job, data: PreparedData,
                 device: str) -> tuple[Trainer, FitResult, RunOutcome]:
    """The two transfer-learning phases, each driven by common.loop.fit with the framework's
    ordinary Trainer:

    1. the frozen base (BatchNorm in inference mode) and a new head at the optimizer's lr; the
       base's features are computed once and the head trains on them, unless augmentation makes
       the inputs differ every epoch (then on images, base frozen);
    2. fine-tuning: the top `fine_tune_layers` blocks of the base unfrozen, BatchNorm still in
       inference mode, at `fine_tune_lr` (skipped when fine_tune_epochs is 0).

    Returns a trainer that predicts images, the merged result and the record's transfer facts.
    """
    cfg, transfer = job.config, job.config.transfer
    train, transfer_impl = impl(framework, "train"), impl(framework, "transfer")
    t0 = time.perf_counter()
    front = impl(framework, "augment").build_augmenter(cfg.augment, cfg.seed, data.input_shape,
                                                       device)
    model = transfer_impl.make_transfer_model(cfg, data, front, device)
    build_seconds = time.perf_counter() - t0
    facts: dict = {"weights_source": model.weights_source,
                   "preprocessing": asdict(model.preprocessing), "padding": model.padding_name}
    if is_path(transfer.weights):  # the pretrained bases' features, for the agreement check
        path = probe_path(job.record_path)
        write_arrays(path, model.probe(data.x_test[:PROBE_IMAGES]))
        facts["feature_probe"] = path.name

    cached = features_cacheable(cfg.augment)
    extraction = 0.0
    trainable = model.freeze(0)
    if cached:  # the frozen base is a fixed function: run it once, not once per epoch
        t0 = time.perf_counter()
        x_train, x_val = model.features(data.x_train), model.features(data.x_val)
        extraction = time.perf_counter() - t0
        trainer = train.make_trainer(replace(cfg, augment=()), data, None, device, model.head)
    else:
        x_train, x_val = data.x_train, data.x_val
        trainer = train.make_trainer(cfg, data, None, device, model.net)
    phases = [run_phase("head", trainer, x_train, x_val, data, cfg, job.callbacks, cfg.epochs,
                        cfg.optimizer["lr"], 0, trainable,
                        "cached features" if cached else "images")]
    if transfer.fine_tune_epochs and not phases[0].result.diverged:
        trainable = model.freeze(transfer.fine_tune_layers)
        fine_cfg = replace(cfg, optimizer={**cfg.optimizer, "lr": transfer.fine_tune_lr})
        trainer = train.make_trainer(fine_cfg, data, None, device, model.net)
        phases.append(run_phase("fine-tune", trainer, data.x_train, data.x_val, data, cfg,
                                job.callbacks, transfer.fine_tune_epochs, transfer.fine_tune_lr,
                                transfer.fine_tune_layers, trainable, "images"))
    elif cached:  # the trained head on the whole network, to predict test images
        trainer = train.make_trainer(cfg, data, None, device, model.net)
        trainer.eval_batch_size = TRANSFER_EVAL_BATCH_SIZE
    result, phase_facts = merge_phases(phases)
    # the one-off feature extraction is training work: it counts, as overhead, not per epoch
    result.first_epoch_overhead_seconds += extraction
    facts.update(features_cached=cached, feature_extraction_seconds=extraction,
                 phases=phase_facts)
    return trainer, result, RunOutcome(
        model=f"{transfer.backbone} {transfer.image_size}px, {model.preprocessing.name}",
        params=model.params,  # base + head, BatchNorm statistics excluded
        build_seconds=build_seconds, extra_train_seconds=extraction, transfer=facts)

