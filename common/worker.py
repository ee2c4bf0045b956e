"""What a framework process does: one entry point for every job a framework runs.

    python -m common.worker FRAMEWORK JOB.json      (compare.py starts it; one framework per process)

FRAMEWORK is a name from common.frameworks (keras, keras-jax, keras-torch, torch): `main` sets
KERAS_BACKEND for the Keras ones before anything imports Keras.

A job file names its kind:
- train:   config -> data -> model -> train (common.loop.fit) -> test -> RunRecord (`run_job`);
- grid:    GridSearchCV (scikeras / skorch) on folds shared by both frameworks -> GridRecord;
- parity:  logits and one step of every optimizer from the shared weights -> .npz;
- device:  can this framework use the requested device? (checked before anything is written);
- fetch / convert / convert-imagenet / probe: transfer-learning weights (a framework's ImageNet
  cache; a torchvision state dict converted to plain arrays for Keras; Keras' ImageNet weights
  converted to plain arrays for PyTorch's twin of a Keras-only graph) and pooled features.
The framework's own code (`{framework}_impl.train`, `.grid`, `.parity`, `.transfer`, `.augment`)
is imported by name, only when a job needs it: importing this module imports no framework.
One error rule for every kind: a UserError is one line `error: <framework>: ...` on stderr and a
non-zero exit; Ctrl-C, also while the framework is still importing, exits 130 without a traceback.
"""

from __future__ import annotations

import os
import signal

if __name__ == "__main__":  # Ctrl-C while this process is still importing: leave quietly
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

import importlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any, Callable, Iterator  # noqa: E402

import numpy as np  # noqa: E402

from common.config import RunConfig  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.frameworks import FRAMEWORKS  # noqa: E402
from common.init import initial_weights  # noqa: E402
from common.machine import LoadMonitor, apply_thread_policy, cpu_model  # noqa: E402
from common.loop import TRANSFER_EVAL_BATCH_SIZE, Callbacks, FitResult, Trainer, fit  # noqa: E402
from common.metrics import confusion, score, worst_predictions  # noqa: E402
from common.parity import parity_batch  # noqa: E402
from common.records import (GridPoint, GridRecord, RunRecord, read_json, write_arrays,  # noqa: E402
                            write_json, write_text)
from common.specs import count_params  # noqa: E402
from common.splits import index_hash, make_split  # noqa: E402
from common.tasks import load_dataset  # noqa: E402
from common.transfer import PROBE_IMAGES, TransferSpec, features_cacheable, is_path, probe_path  # noqa: E402

# Modules whose presence in sys.modules the record reports: proof that a process ran one
# framework only (TensorFlow and PyTorch in one process can crash here).
FRAMEWORK_MODULES = ("tensorflow", "keras", "torch", "torchvision", "jax")
# The thread-runtime settings main() applied (common.machine.THREAD_POLICY), for the record.
THREAD_POLICY_IN_FORCE: dict[str, str] = {}


def impl(framework: str, module: str) -> ModuleType:
    """The framework's `{keras,torch}_impl.{module}`, imported now (the parent process never
    calls this)."""
    return importlib.import_module(f"{FRAMEWORKS[framework].impl}.{module}")


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: TensorFlow's C++ start-up lines ('oneDNN
    custom operations are on', the absl notice) come from static initialisers that no log level
    reaches. Python errors raised in the block are printed after it, with stderr restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# ----------------------------------------------------------------------------- data


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
    constant_channels: tuple[int, ...] = ()  # centred only: their std was ~0 (standardisation)


# A channel whose standard deviation is below half a grey level (in [0, 1] units) is constant in
# practice: dividing by it would turn rounding noise into huge inputs, and by 0 into NaN. Such a
# channel is only centred (divided by 1), the rule of scikit-learn's StandardScaler for
# near-constant features (sklearn.preprocessing._data._handle_zeros_in_scale), stated in the record.
CONSTANT_CHANNEL_STD = 0.5 / 255.0


def standardisation(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Per-channel (mean, std, constant channels) of uint8 images `train` (N, H, W, C), in [0, 1]
    units, float64. A constant channel (std < CONSTANT_CHANNEL_STD) gets std 1."""
    mean = train.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
    std = train.std(axis=(0, 1, 2), dtype=np.float64) / 255.0
    constant = tuple(int(c) for c in np.flatnonzero(~(std >= CONSTANT_CHANNEL_STD)))
    std = np.where(std >= CONSTANT_CHANNEL_STD, std, 1.0)
    return mean, std, constant


def check_finite(splits: dict[str, np.ndarray], description: str) -> None:
    """Raise UserError naming the first split of `splits` ({name: array}) holding NaN or inf:
    no framework may train on non-finite inputs (one diverges, another reports chance)."""
    for name, x in splits.items():
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise UserError(f"{description}: {int(bad.sum())} non-finite values in the prepared "
                            f"{name} inputs (first in image {first}); check the data files")


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load cfg.task, split it (common.splits) and standardise it into float32 NHWC arrays.

    Raises UserError (via common.data) for unreadable data, and when a prepared array holds a
    non-finite value."""
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
    # Per-channel standardisation with statistics of the training split only (no peeking at
    # validation or test data): SGD from a Glorot start learns far faster on centred inputs.
    mean, std, constant = standardisation(ds.x_train[split.train])
    if cfg.pipeline == "transfer":  # [0, 1] RGB: each backbone normalises its own way
        mean, std, constant = np.zeros_like(mean), np.ones_like(std), ()

    def scale(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / np.float32(255.0) - mean.astype(np.float32))
                / std.astype(np.float32))

    data = PreparedData(
        x_train=scale(ds.x_train[split.train]), y_train=ds.y_train[split.train].astype(np.int64),
        x_val=scale(ds.x_train[split.val]), y_val=ds.y_train[split.val].astype(np.int64),
        x_test=scale(ds.x_test), y_test=ds.y_test.astype(np.int64),
        input_shape=tuple(int(d) for d in ds.x_train.shape[1:]),
        num_classes=len(ds.class_names), class_names=ds.class_names, split_hash=split.hash,
        channel_mean=tuple(mean.round(6).tolist()), channel_std=tuple(std.round(6).tolist()),
        constant_channels=constant,
    )
    check_finite({"training": data.x_train, "validation": data.x_val, "test": data.x_test},
                 cfg.task)
    return data


def environment(threads: int, device: str, framework_facts: dict) -> dict:
    """Machine and version facts for a record, and which frameworks this process loaded."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "threads": threads,
        "device": device,
        **framework_facts,
        "loaded_frameworks": sorted(m for m in FRAMEWORK_MODULES if m in sys.modules),
        "cpu_model": cpu_model(),
        "thread_policy": dict(THREAD_POLICY_IN_FORCE),
        "date": time.strftime("%Y-%m-%d"),
    }


# ----------------------------------------------------------------------------- train


@dataclass(frozen=True)
class Job:
    """A training run handed to a framework process: the config and where the record goes."""

    config: RunConfig
    record_path: str
    repeat: int = 0
    callbacks: Callbacks = Callbacks()

    def to_dict(self) -> dict:
        return {"kind": "train", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        return cls(config=RunConfig.from_dict(data["config"]), record_path=data["record_path"],
                   repeat=data.get("repeat", 0), callbacks=Callbacks.from_dict(data["callbacks"]))


def run_job(framework: str, job: Job) -> RunRecord:
    """Train and test one framework; write and return its record."""
    cfg = job.config
    train = impl(framework, "train")
    facts = {**train.setup(cfg.threads, cfg.seed, cfg.deterministic), "framework": framework}
    device = train.resolve_device(cfg.device)
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    data_seconds = time.perf_counter() - t0

    monitor = LoadMonitor(cfg.threads)
    if cfg.pipeline == "transfer":
        with monitor:
            trainer, result, outcome = fit_transfer(framework, job, data, device)
    else:
        t0 = time.perf_counter()
        weights = (initial_weights(cfg.arch, data.input_shape, data.num_classes, cfg.seed)
                   if cfg.init == "shared" else None)
        trainer = train.make_trainer(cfg, data, weights, device)
        outcome = RunOutcome(model=cfg.model, params=trainer.params,
                                  build_seconds=time.perf_counter() - t0,
                                  expected_params=count_params(cfg.arch, data.input_shape,
                                                               data.num_classes))
        with monitor:
            result = fit(trainer, data.x_train, data.y_train, data.x_val, data.y_val,
                         epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                         lr=cfg.optimizer["lr"], callbacks=job.callbacks)
    # The tested weights (restored best, if so) scored on every split in inference mode
    # (dropout off, BatchNorm on its moving statistics, no augmentation), by the one metric
    # code: unlike the history's running training accuracy, the three numbers are comparable.
    t0 = time.perf_counter()
    test_logits = trainer.predict(data.x_test)
    inference = {"seconds_per_image": (time.perf_counter() - t0) / max(len(data.x_test), 1),
                 "batch_size": trainer.eval_batch_size,
                 "batch1_median_seconds": batch1_latency(trainer, data.x_test)}
    test = score(test_logits, data.y_test)
    train_scores = score(trainer.predict(data.x_train), data.y_train)
    val_scores = score(trainer.predict(data.x_val), data.y_val)
    evaluation_seconds = time.perf_counter() - t0
    record = RunRecord(
        task=cfg.task, framework=framework, model=outcome.model, repeat=job.repeat,
        seed=cfg.seed, config=cfg, callbacks=job.callbacks, params=outcome.params,
        expected_params=outcome.expected_params, train_size=len(data.x_train),
        val_size=len(data.x_val), test_size=len(data.x_test),
        test_accuracy=test.accuracy, test_loss=test.loss,
        train_accuracy=train_scores.accuracy, train_loss=train_scores.loss,
        val_accuracy=val_scores.accuracy, val_loss=val_scores.loss,
        train_seconds=result.train_seconds + outcome.extra_train_seconds,
        epoch_seconds=result.epoch_seconds,
        first_epoch_overhead_seconds=result.first_epoch_overhead_seconds,
        excluded_from_timing={"data_loading_seconds": data_seconds,
                              "model_build_seconds": outcome.build_seconds,
                              "evaluation_seconds": evaluation_seconds},
        best_epoch=result.best_epoch, stopped_early=result.stopped_early,
        diverged=result.diverged, history=result.history,
        confusion_matrix=confusion(test_logits, data.y_test, data.num_classes).tolist(),
        worst_test_predictions=worst_predictions(test_logits, data.y_test, k=10),
        class_names=list(data.class_names), split_hash=data.split_hash,
        input_standardisation={"mean": list(data.channel_mean), "std": list(data.channel_std),
                               "constant_channels": list(data.constant_channels)},
        environment=environment(cfg.threads, device,
                                {**facts, "tf32": getattr(trainer, "tf32", False),
                                 "fast_options": getattr(trainer, "fast_options", {})}),
        transfer=outcome.transfer, inference=inference, contention=monitor.result.to_dict() if monitor.result else None,
    )
    write_json(job.record_path, record)
    return record


# Single-image predictions timed for the batch-1 latency, after as many untimed warm-up calls.
LATENCY_CALLS = 20


def batch1_latency(trainer, x: np.ndarray) -> float | None:
    """Median seconds of one test image's prediction (trainer.predict_on_batch) over up to
    LATENCY_CALLS images, after LATENCY_CALLS // 4 warm-up calls; None without test images."""
    if not len(x):
        return None
    images = [x[i:i + 1] for i in range(min(LATENCY_CALLS, len(x)))]
    for image in images[:LATENCY_CALLS // 4]:
        trainer.predict_on_batch(image)
    seconds = []
    for image in images:
        t0 = time.perf_counter()
        trainer.predict_on_batch(image)
        seconds.append(time.perf_counter() - t0)
    return float(np.median(seconds))


# ----------------------------------------------------------------------------- transfer


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
    cfg, spec = job.config, job.config.transfer
    train, transfer = impl(framework, "train"), impl(framework, "transfer")
    t0 = time.perf_counter()
    front = impl(framework, "augment").build_augmenter(cfg.augment, cfg.seed, data.input_shape,
                                                       device)
    model = transfer.make_transfer_model(cfg, data, front, device)
    build_seconds = time.perf_counter() - t0
    facts: dict = {"weights_source": model.weights_source,
                   "preprocessing": asdict(model.preprocessing), "padding": model.padding_name}
    if is_path(spec.weights):  # the pretrained bases' features, for the agreement check
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
    if spec.fine_tune_epochs and not phases[0].result.diverged:
        trainable = model.freeze(spec.fine_tune_layers)
        fine_cfg = replace(cfg, optimizer={**cfg.optimizer, "lr": spec.fine_tune_lr})
        trainer = train.make_trainer(fine_cfg, data, None, device, model.net)
        phases.append(run_phase("fine-tune", trainer, data.x_train, data.x_val, data, cfg,
                                job.callbacks, spec.fine_tune_epochs, spec.fine_tune_lr,
                                spec.fine_tune_layers, trainable, "images"))
    elif cached:  # the trained head on the whole network, to predict test images
        trainer = train.make_trainer(cfg, data, None, device, model.net)
        trainer.eval_batch_size = TRANSFER_EVAL_BATCH_SIZE
    result, phase_facts = merge_phases(phases)
    # the one-off feature extraction is training work: it counts, as overhead, not per epoch
    result.first_epoch_overhead_seconds += extraction
    facts.update(features_cached=cached, feature_extraction_seconds=extraction,
                 phases=phase_facts)
    return trainer, result, RunOutcome(
        model=f"{spec.backbone} {spec.image_size}px, {model.preprocessing.name}",
        params=model.params,  # base + head, BatchNorm statistics excluded
        build_seconds=build_seconds, extra_train_seconds=extraction, transfer=facts)


# ----------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class GridJob:
    """A grid search handed to a framework process: one resolved config per grid point."""

    keys: tuple[str, ...]  # the grid's settings, in the order given
    labels: tuple[dict[str, str], ...]  # per point: setting -> label (the CSV's first columns)
    configs: tuple[RunConfig, ...]  # one per grid point, in order
    cv: int
    record_path: str
    csv_path: str

    def to_dict(self) -> dict:
        return {"kind": "grid", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "GridJob":
        return cls(keys=tuple(data["keys"]), labels=tuple(data["labels"]),
                   configs=tuple(RunConfig.from_dict(c) for c in data["configs"]),
                   cv=data["cv"], record_path=data["record_path"], csv_path=data["csv_path"])


@dataclass(frozen=True)
class GridBackend:
    """What keras_impl.grid and torch_impl.grid each provide (same names on both sides)."""

    make_estimator: Callable[[RunConfig, PreparedData], Any]  # scikeras / skorch classifier
    estimator_params: Callable[[RunConfig], dict]  # a grid point's config -> estimator params
    to_input: Callable[[np.ndarray], np.ndarray]  # prepared NHWC float32 -> the model's layout
    predict_logits: Callable[[Any, np.ndarray], np.ndarray]  # fitted estimator -> logits
    count_params: Callable[[Any], int]  # fitted estimator -> trainable parameters


SCORING = "accuracy"


def cv_folds(y: np.ndarray, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled folds as explicit (train, test) index pairs, the same in both
    processes (GridSearchCV takes the list as `cv=`)."""
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]


def param_grid(configs: tuple[RunConfig, ...], backend: GridBackend) -> list[dict[str, list]]:
    """One single-point grid per configuration, so cv_results_ row i is grid point i.

    Only the estimator parameters that differ between points are listed; the rest stay as
    make_estimator set them, which keeps cv_results_' param columns readable.
    """
    params = [backend.estimator_params(c) for c in configs]
    varying = [k for k in params[0] if any(p[k] != params[0][k] for p in params)]
    return [{k: [p[k]] for k in varying} for p in params]


def run_grid_job(framework: str, job: GridJob) -> GridRecord:
    """GridSearchCV over the job's points; writes cv_results_ (CSV), then the grid record."""
    import pandas as pd  # noqa: PLC0415
    from sklearn.model_selection import GridSearchCV  # noqa: PLC0415

    base = job.configs[0]  # every point shares the data settings (train_size is not gridable)
    facts = {**impl(framework, "train").setup(base.threads, base.seed, base.deterministic),
             "framework": framework}
    device = impl(framework, "train").resolve_device(base.device)
    backend: GridBackend = impl(framework, "grid").BACKEND
    t0 = time.perf_counter()
    data = prepare_data(base)
    data_seconds = time.perf_counter() - t0
    folds = cv_folds(data.y_train, job.cv, base.split_seed)
    search = GridSearchCV(backend.make_estimator(base, data), param_grid(job.configs, backend),
                          scoring=SCORING, cv=folds, refit=True, n_jobs=1, verbose=1,
                          error_score=np.nan)
    t0 = time.perf_counter()
    search.fit(backend.to_input(data.x_train), data.y_train)
    search_seconds = time.perf_counter() - t0
    test = score(backend.predict_logits(search.best_estimator_, backend.to_input(data.x_test)),
                 data.y_test)

    cv_results = pd.DataFrame(search.cv_results_)
    for i, key in enumerate(job.keys):  # the suite's names first, then sklearn's own columns
        cv_results.insert(i, key, [point[key] for point in job.labels])
    write_text(job.csv_path, cv_results.to_csv(index=False))

    res = search.cv_results_
    record = GridRecord(
        task=base.task, framework=framework, model=base.model, keys=list(job.keys),
        labels=list(job.labels),
        configs=list(job.configs), cv=job.cv, scoring=SCORING,
        folds_hash=index_hash(*(part for fold in folds for part in fold)),
        split_hash=data.split_hash, train_size=len(data.x_train), test_size=len(data.x_test),
        results=[GridPoint(
            mean_cv_accuracy=float(res["mean_test_score"][i]),
            std_cv_accuracy=float(res["std_test_score"][i]),
            fold_accuracies=[float(res[f"split{f}_test_score"][i]) for f in range(job.cv)],
            mean_fit_seconds=float(res["mean_fit_time"][i]),
            std_fit_seconds=float(res["std_fit_time"][i]),
            rank=int(res["rank_test_score"][i])) for i in range(len(job.configs))],
        best_index=int(search.best_index_), best_cv_accuracy=float(search.best_score_),
        params=backend.count_params(search.best_estimator_),
        test_accuracy=test.accuracy, test_loss=test.loss,
        refit_seconds=float(search.refit_time_), search_seconds=search_seconds,
        excluded_from_timing={"data_loading_seconds": data_seconds},
        cv_results_csv=Path(job.csv_path).name,
        environment=environment(base.threads, device, facts),
    )
    write_json(job.record_path, record)
    return record


# ----------------------------------------------------------------------------- parity


def run_parity_job(framework: str, cases: list[dict], out: str) -> None:
    """Every case's logits, one-step weights and parameter count into OUT.npz (common.parity)."""
    from common.parity import case_arch  # noqa: PLC0415

    impl(framework, "train").setup(1, 0, True)
    parity = impl(framework, "parity")
    arrays: dict[str, np.ndarray] = {}
    for case in cases:
        arch, shape, classes = case_arch(case), tuple(case["input_shape"]), case["num_classes"]
        x, y = parity_batch(shape, classes, seed=case["seed"])
        outputs = parity.parity_outputs(arch, shape, classes, case["seed"], x, y,
                                        case["optimizers"])
        arrays.update({f"{case['name']}|{k}": v for k, v in outputs.items()})
        arrays[f"{case['name']}|params"] = np.array(parity.count_model_params(arch, shape, classes))
    write_arrays(out, arrays)


# ----------------------------------------------------------------------------- entry point


def run(framework: str, job: dict) -> None:
    """Run one job of any kind in this (the framework's) process."""
    kind = job.get("kind")
    if kind == "train":
        run_job(framework, Job.from_dict(job))
    elif kind == "grid":
        run_grid_job(framework, GridJob.from_dict(job))
    elif kind == "parity":
        run_parity_job(framework, job["cases"], job["out"])
    elif kind == "device":
        print(impl(framework, "train").resolve_device(job["device"]))
    elif kind in ("fetch", "convert", "convert-imagenet", "probe"):
        spec = TransferSpec(**job["spec"])
        transfer = impl(framework, "transfer")
        if kind == "fetch":
            print(transfer.fetch_imagenet(spec, job["download"]))
        elif kind == "convert":  # torch: --weights PATH as plain arrays for Keras
            print(transfer.convert_path_weights(spec, job["cache_dir"]))
        elif kind == "convert-imagenet":  # keras: its ImageNet weights for the PyTorch twin
            print(transfer.convert_imagenet_weights(spec, job["download"], job["cache_dir"]))
        else:
            impl(framework, "train").setup(job["threads"], 0, True)
            write_arrays(job["out"], transfer.probe(spec, np.load(job["images"]),
                                                    job["cache_dir"]))
    else:
        raise ValueError(f"unknown job kind {kind!r}")


def main(argv: list[str]) -> None:
    framework, job_path = argv
    THREAD_POLICY_IN_FORCE.update(apply_thread_policy())  # before any framework is imported
    backend = FRAMEWORKS[framework].keras_backend
    if backend is not None:  # before keras_impl (and so Keras) is first imported
        os.environ["KERAS_BACKEND"] = backend
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here: KeyboardInterrupt
    try:
        run(framework, read_json(job_path))
    except UserError as err:
        print(f"error: {framework}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal's job
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1:])
