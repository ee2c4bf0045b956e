"""Running what a plan says, from the parent process: a comparison (each framework in its own
process per repeat, then the report from the records they wrote) and the parity actions.
Studies (common.studies) start their framework processes through the same launcher.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common.data import Dataset
from common.errors import UserError
from common.figures import write_figures
from common.files import write_json, write_text
from common.frameworks import REFERENCE, installed, is_keras
from common.jobs import Job
from common.executors import run_jobs, run_parity
from common.launch import WorkerJob, call_worker, new_run_dir
from common.parity import case_to_dict, default_optimizers
from common.plan import Plan
from common.specs import layer_table
from common.records import run_records
from common.report.parity import agreement_lines, parity_table
from common.report.run import check_comparable, difference_lines, markdown_table, render_report
from common.report.transfer import transfer_lines
from common.report.values import results_csv
from common.transfer import PADDING_KERAS, PADDING_TORCHVISION, PROBE_IMAGES


def check_parity(plan: Plan, shape: tuple[int, int, int], num_classes: int) -> None:
    """Every chosen framework and PyTorch (the reference), each in its own process, from the
    shared initial weights."""
    cfg = plan.config
    cases = [case_to_dict(f"{cfg.model} {dtype}", cfg.arch, shape, num_classes, cfg.seed,
                          default_optimizers(), dtype) for dtype in ("float64", "float32")]
    frameworks = (REFERENCE, *(f for f in plan.frameworks if f != REFERENCE))
    if len(frameworks) == 1:  # --framework torch: against the first installed Keras
        keras = [f for f in installed() if is_keras(f)]
        if not keras:
            raise UserError("--check-parity compares a Keras backend with PyTorch: no Keras "
                            "backend is installed (pip install -r requirements.txt)")
        frameworks = (REFERENCE, keras[0])
    result = run_parity(cases, frameworks, executor=plan.executor)
    print("\n" + parity_table(cfg.model, cfg.task, shape, cfg.seed, result[f"{cfg.model} float64"],
                              result[f"{cfg.model} float32"],
                              layer_table(cfg.arch, shape, num_classes)))


def check_transfer_parity(plan: Plan, ds: Dataset) -> None:
    """--check-parity --pipeline transfer: each chosen Keras framework's pooled base features of
    the first test images against PyTorch's, each framework in its own process, from the same
    (converted) weights. The framework set is --framework's, as for every command (PyTorch is
    the reference; with one framework given, the first installed other side joins it)."""
    import numpy as np  # only this check needs arrays here

    cfg, transfer = plan.config, plan.config.transfer
    others = [f for f in plan.frameworks if f != REFERENCE]
    if not others:  # --framework torch: against the first installed Keras
        others = [f for f in installed() if is_keras(f)][:1]
    if not others:
        raise UserError("--check-parity compares a Keras backend with PyTorch: no Keras "
                        "backend is installed (pip install -r requirements.txt)")
    frameworks = (REFERENCE, *others)
    with tempfile.TemporaryDirectory(prefix="dlcv-probe-") as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, ds.x_test[:PROBE_IMAGES].astype(np.float32) / 255)
        features = {}
        for fw in frameworks:
            out = Path(tmp) / f"{fw}.npz"
            call_worker(fw, {"kind": "probe", "transfer": dataclasses.asdict(transfer),
                             "images": str(images), "out": str(out), "threads": cfg.threads,
                             "cache_dir": cfg.cache_dir})
            features[fw] = dict(np.load(out))
    used = PADDING_TORCHVISION if transfer.match_padding else PADDING_KERAS
    for fw in others:
        print(f"\nFeature agreement of {transfer.backbone} with {transfer.weights_label()} at "
              f"{transfer.image_size}px on {cfg.task}, {fw} vs {REFERENCE}:")
        for line in agreement_lines(features[fw], features[REFERENCE], used):
            print(line)


def run_comparison(plan: Plan, ds: Dataset, out: str, plots: bool) -> Path:
    """Each framework in its own process, per repeat; then the report from the records.
    Returns the run folder."""
    cfg = plan.config
    try:
        run_dir = new_run_dir(out, cfg.task)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create a run folder there ({err.strerror})") from None
    run_config = {"command": plan.command, "frameworks": list(plan.frameworks),
                  "repeats": plan.repeats, "callbacks": dataclasses.asdict(plan.callbacks),
                  "config": cfg.to_dict(), "data_notes": list(ds.notes)}
    write_json(run_dir / "config.json", run_config)

    def jobs() -> Iterator[WorkerJob]:
        # Frameworks alternate within each repeat, so slow drift of the machine hits both alike.
        for repeat in range(plan.repeats):
            for framework in plan.frameworks:
                suffix = f"-r{repeat}" if plan.repeats > 1 else ""
                job = Job(config=dataclasses.replace(cfg, seed=cfg.seed + repeat),
                          record_path=str(run_dir / f"record-{framework}{suffix}.json"),
                          repeat=repeat, callbacks=plan.callbacks)
                yield framework, framework, job.to_dict(), run_dir / f"job-{framework}{suffix}.json"

    failed = run_jobs(jobs(), plan.executor)

    records = run_records(run_dir)
    if records:
        check_comparable(records)
        figures = write_figures(records, ds.x_test, run_dir) if plots else ""
        transfer_section = transfer_lines(records, run_dir)  # [] for the CNN pipeline
        write_text(run_dir / "report.md",
                   render_report(records, run_config, transfer_section, figures))
        write_text(run_dir / "results.csv", results_csv(run_dir))
        print(f"\nResults: {run_dir}/report.md\n")
        for line in transfer_section + difference_lines(records):
            print(line)
        print(markdown_table(records))
    if failed:
        raise UserError(f"run failed: {', '.join(failed)}; completed records are in {run_dir}")
    return run_dir

