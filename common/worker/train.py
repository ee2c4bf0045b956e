"""The train job: config -> data -> model -> train (common.loop.fit) -> test -> RunRecord."""

from __future__ import annotations

import time

import numpy as np

from common.data.prepare import prepare_data
from common.files import write_json
from common.init import initial_weights, weights_hash
from common.jobs import Job
from common.loop import fit
from common.machine import LoadMonitor, mark
from common.metrics import confusion, score, worst_predictions
from common.records import RunRecord
from common.specs import count_params
from common.worker.process import environment, impl
from common.worker.transfer import RunOutcome, fit_transfer


def run_job(framework: str, job: Job) -> RunRecord:
    """Train and test one framework; write and return its record."""
    cfg = job.config
    start = mark()  # the load before training is measured over the setup that follows
    train = impl(framework, "train")
    facts = {**train.setup(cfg.threads, cfg.seed, cfg.deterministic), "framework": framework}
    device = train.resolve_device(cfg.device)
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    data_seconds = time.perf_counter() - t0

    monitor = LoadMonitor(cfg.threads, since=start)
    start_hash = None
    if cfg.pipeline == "transfer":
        with monitor:
            trainer, result, outcome = fit_transfer(framework, job, data, device)
    else:
        t0 = time.perf_counter()
        weights = (initial_weights(cfg.arch, data.input_shape, data.num_classes, cfg.seed)
                   if cfg.init == "shared" else None)
        start_hash = weights_hash(weights) if weights is not None else None  # before training
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
    val_scores = score(trainer.predict(data.x_val) if len(data.x_val) else
                       np.zeros((0, 0), np.float32), data.y_val)
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
                                {**facts, "tf32": trainer.tf32,
                                 "fast_options": trainer.fast_options}),
        transfer=outcome.transfer, inference=inference,
        contention=monitor.result.to_dict() if monitor.result else None,
        initial_weights_hash=start_hash,
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

