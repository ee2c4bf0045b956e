"""The framework process's entry point: one dispatcher for every job a framework runs.

    python -m common.worker FRAMEWORK JOB.json      (compare.py starts it; one framework per process)

FRAMEWORK is a name from common.frameworks (keras, keras-jax, keras-torch, torch): `main` sets
KERAS_BACKEND for the Keras ones before anything imports Keras.

A job file names its kind:
- train:   config -> data -> model -> train (common.loop.fit) -> test -> RunRecord
           (common.worker.train; transfer runs: common.worker.transfer);
- grid:    GridSearchCV (scikeras / skorch) on folds shared by both frameworks -> GridRecord
           (common.worker.grid);
- parity:  logits and one step of every optimizer from the shared weights -> .npz
           (common.worker.parity);
- device:  can this framework use the requested device? (checked before anything is written);
- fetch / convert / convert-imagenet / probe: transfer-learning weights (a framework's ImageNet
  cache; a torchvision state dict converted to plain arrays for Keras; Keras' ImageNet weights
  converted to plain arrays for PyTorch's twin of a Keras-only graph) and pooled features.
The framework's own code (`{framework}_impl.train`, `.grid`, `.parity`, `.transfer`, `.augment`)
is imported by name (common.worker.process.impl), only when a job needs it: importing the
worker's modules imports no framework. This file runs once, as __main__: nothing imports it.
One error rule for every kind: a UserError is one line `error: <framework>: ...` on stderr and a
non-zero exit; Ctrl-C, also while the framework is still importing, exits 130 without a traceback.
"""

from __future__ import annotations

import os
import signal

if __name__ == "__main__":  # Ctrl-C while this process is still importing: leave quietly
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))

import sys

import numpy as np

from common.errors import UserError
from common.files import read_json, write_arrays
from common.frameworks import FRAMEWORKS
from common.jobs import GridJob, Job
from common.machine import apply_thread_policy
from common.transfer import TransferSpec
from common.worker import process
from common.worker.grid import run_grid_job
from common.worker.parity import run_parity_job
from common.worker.process import impl
from common.worker.train import run_job


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
        transfer = TransferSpec(**job["transfer"])
        transfer_impl = impl(framework, "transfer")
        if kind == "fetch":
            print(transfer_impl.fetch_imagenet(transfer, job["download"]))
        elif kind == "convert":  # torch: --weights PATH as plain arrays for Keras
            print(transfer_impl.convert_path_weights(transfer, job["cache_dir"]))
        elif kind == "convert-imagenet":  # keras: its ImageNet weights for the PyTorch twin
            print(transfer_impl.convert_imagenet_weights(transfer, job["download"], job["cache_dir"]))
        else:
            impl(framework, "train").setup(job["threads"], 0, True)
            write_arrays(job["out"], transfer_impl.probe(transfer, np.load(job["images"]),
                                                    job["cache_dir"]))
    else:
        raise ValueError(f"unknown job kind {kind!r}")


def main(argv: list[str]) -> None:
    """`python -m common.worker FRAMEWORK JOB.json` (argv without the program): set the thread
    policy and KERAS_BACKEND before any framework is imported, then run the job. Exits with a
    UserError's code after one `error: FRAMEWORK: ...` line on stderr, 130 on Ctrl-C."""
    framework, job_path = argv
    process.die_with_parent(os.environ.get("DLCV_PARENT_PID"))
    process.THREAD_POLICY_IN_FORCE.update(apply_thread_policy())  # before any framework is imported
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
