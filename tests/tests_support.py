"""Builders for tests: result records with realistic content, without training anything."""

from __future__ import annotations

from dataclasses import replace

from common.config import RunConfig
from common.loop import Callbacks
from common.optim import resolve_optimizer
from common.records import RunRecord
from common.specs import get_preset


def make_record(framework: str, **fields) -> RunRecord:
    """A digits RunRecord of a 2-epoch run; `fields` override any field."""
    cfg = RunConfig(task="digits", model="digits_cnn", arch=get_preset("digits_cnn"),
                    optimizer=resolve_optimizer("sgd"), epochs=2, batch_size=32, val_size=300)
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5, "val_loss": 1.2 / e,
                "val_accuracy": 0.6, "seconds": 1.5, "lr": 0.01} for e in (1, 2)]
    record = RunRecord(
        task="digits", framework=framework, model="digits_cnn", repeat=0, seed=0, config=cfg,
        callbacks=Callbacks(), params=38282, expected_params=38282, train_size=1137,
        val_size=300, test_size=360, test_accuracy=0.9, test_loss=0.3, train_accuracy=0.95,
        train_loss=0.2, val_accuracy=0.92, val_loss=0.25, train_seconds=3.0,
        epoch_seconds=[1.5, 1.5], first_epoch_overhead_seconds=0.0,
        excluded_from_timing={"data_loading_seconds": 0.1, "model_build_seconds": 0.2},
        best_epoch=2, stopped_early=False, diverged=False, history=history,
        confusion_matrix=[[36 if i == j else 0 for j in range(10)] for i in range(10)],
        worst_test_predictions=[], class_names=[str(d) for d in range(10)],
        split_hash="0123456789abcdef", input_standardisation={"mean": [0.3], "std": [0.4]},
        environment={"framework": framework, "threads": 2, "device": "cpu"})
    if "seed" in fields and "config" not in fields:
        fields["config"] = replace(cfg, seed=fields["seed"])
    return replace(record, **fields)
