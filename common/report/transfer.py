"""The transfer-learning section of a run's report: the phases, and the feature agreement of
the backbones where both frameworks started from the same (PATH) weights."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from common.records import RunRecord
from common.transfer import (TransferSpec, get_backbone,
                             is_path)
from common.report.parity import agreement_lines


def transfer_lines(records: list[RunRecord], run_dir: str | Path) -> list[str]:
    """The transfer-learning facts of a run, from its records and probe files (markdown lines)."""
    runs = [r for r in records if r.config.pipeline == "transfer"]
    if not runs:
        return []
    transfer: TransferSpec = runs[0].config.transfer
    blocks = get_backbone(transfer.backbone).blocks
    lines = [f"Transfer learning: {transfer.backbone} at {transfer.image_size}x{transfer.image_size} px, "
             f"weights {transfer.weights_label()}; the epochs column counts both phases. Training "
             "seconds include the one-off feature extraction, counted as first-epoch overhead."]
    for r in runs:
        t = r.transfer
        head, *rest = t["phases"]
        cached = ("the frozen base's features computed once "
                  f"({t['feature_extraction_seconds']:.1f} s) and the head trained on them"
                  if t["features_cached"] else "the frozen base run on every batch "
                  "(augmentation changes the inputs each epoch)")
        tail = "; no fine-tuning" if not rest else (
            f"; phase 2: top {rest[0]['blocks']} of {blocks} blocks unfrozen at lr "
            f"{rest[0]['lr']:g}, {rest[0]['trainable_params']:,} trainable parameters, "
            f"{rest[0]['epochs']} epoch(s)")
        lines.append(
            f"- {r.framework}: base from {t['weights_source']}; preprocessing: "
            f"{t['preprocessing']['description']}; padding: {t['padding']}; phase 1: {cached}, "
            f"BatchNorm in inference mode, {head['trainable_params']:,} trainable parameters"
            + tail + ".")
    if is_path(transfer.weights):
        lines += _probe_lines(runs, Path(run_dir))
    else:
        lines.append("- Feature agreement between the frameworks is not measured: with "
                     f"--weights {transfer.weights} their bases hold different weights.")
    return lines


def _probe_lines(runs: list[RunRecord], run_dir: Path) -> list[str]:
    by_repeat: dict[int, dict[str, RunRecord]] = collections.defaultdict(dict)
    for r in runs:
        by_repeat[r.repeat][r.framework] = r
    pair = next((p for p in by_repeat.values() if {"keras", "torch"} <= set(p)), None)
    if pair is None:
        return ["- Feature agreement: needs both frameworks in the same run."]
    try:
        keras = dict(np.load(run_dir / pair["keras"].transfer["feature_probe"]))
        torch = dict(np.load(run_dir / pair["torch"].transfer["feature_probe"]))
    except (OSError, KeyError, ValueError) as err:
        return [f"- Feature agreement: probe features unavailable ({err})."]
    return [f"- Feature agreement of the pretrained bases, Keras vs PyTorch (pooled features of "
            f"the first {len(keras['features'])} test images, before any training):",
            *agreement_lines(keras, torch, pair["keras"].transfer["padding"])]


