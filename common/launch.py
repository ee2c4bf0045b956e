"""Starting framework processes, from the parent process (compare.py and the studies).

Every framework job runs as `python -m common.worker FRAMEWORK JOB.json` (see common.worker), one
framework per process: TensorFlow and PyTorch in one process can crash here. This module never
imports a framework; it also owns the run-folder naming and the recorded command line.

A framework process writes its progress straight to the terminal. Inside `forwarded_output`
(compare.run, for notebooks: a Jupyter or Colab cell does not show what a child process writes
to the kernel's own stdout) its output comes through a pipe instead, line by line, to the
parent's sys.stdout; on a pipe tqdm turns its bars off, so that is the per-epoch lines.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from common.errors import UserError
from common.frameworks import BOTH, reference
from common.parity import compare_outputs
from common.files import write_json
from common.tasks import task_slug

ROOT = Path(__file__).resolve().parent.parent


def command_line(argv: list[str] | None) -> str:
    """The command as the user can paste it again (recorded in config.json and reports)."""
    return "python compare.py " + shlex.join(sys.argv[1:] if argv is None else argv)


# Where framework processes' output goes inside `forwarded_output`; None: the terminal.
_FORWARD: ContextVar[Callable[[str], None] | None] = ContextVar("forward", default=None)


def to_stdout(line: str) -> None:
    """Write one forwarded line to the current sys.stdout and flush it."""
    sys.stdout.write(line)  # looked up per line: a notebook or pytest may have replaced it
    sys.stdout.flush()


@contextmanager
def forwarded_output(write: Callable[[str], None] = to_stdout) -> Iterator[None]:
    """Within the block, every framework process's stdout and stderr lines go to `write`."""
    token = _FORWARD.set(write)
    try:
        yield
    finally:
        _FORWARD.reset(token)


def run_worker(framework: str, job: dict, job_path: Path) -> int:
    """Write the job file, run it; the framework's progress goes straight to the terminal (or
    through `forwarded_output`). Returns the exit status (130: interrupted)."""
    write_json(job_path, job)
    command = [sys.executable, "-m", "common.worker", framework, str(job_path)]
    write = _FORWARD.get()
    if write is None:
        return subprocess.call(command, cwd=ROOT)
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        try:
            for line in proc.stdout:
                write(line)
            return proc.wait()
        except BaseException:  # e.g. a notebook's interrupt: the framework process stops too
            proc.kill()
            raise


# One framework job to run: (framework, label for a failure line, the job's dict, its job file).
WorkerJob = tuple[str, str, dict, Path]


def run_jobs(jobs: Iterable[WorkerJob]) -> list[str]:
    """Run framework jobs one after the other, each in its own process (run_worker): the one
    loop of comparisons, repeats and studies. `jobs` may be a generator (it can print progress
    or skip finished work as it goes). Returns a line per failed job ('<label> (exit N)'), and
    'interrupted' last when Ctrl-C, or a framework process interrupted (exit 130), stopped the
    loop; the jobs after that are not run."""
    failed: list[str] = []
    try:
        for framework, label, job, job_path in jobs:
            code = run_worker(framework, job, job_path)
            if code == 130:  # the framework process was interrupted: so is the whole run
                raise KeyboardInterrupt
            if code != 0:
                failed.append(f"{label} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")
    return failed


def call_worker(framework: str, job: dict) -> str:
    """Run a short job (device check, weights fetch, conversion, probe, parity) with its output
    captured; returns what it printed, or raises UserError with the worker's one-line error."""
    with tempfile.TemporaryDirectory(prefix="dlcv-job-") as tmp:
        path = Path(tmp) / "job.json"
        write_json(path, job)
        proc = subprocess.run([sys.executable, "-m", "common.worker", framework, str(path)],
                              cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 0:
        return proc.stdout.strip()
    if proc.returncode == 130:
        raise KeyboardInterrupt
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    if errors:
        raise UserError(errors[-1][len("error: "):])
    last = " ".join(proc.stderr.strip().splitlines()[-1:])[:300]
    raise UserError(f"{framework}: the {job['kind']} job failed (exit {proc.returncode}): {last}")


def run_parity(cases: list[dict], frameworks: tuple[str, ...] = BOTH,
               only: dict[str, tuple[str, ...]] | None = None) -> dict[str, dict]:
    """Each framework computes every case (or, per `only`, the named ones) in its own process;
    per case: the reference (torch when present), per other framework that computed it its max
    abs differences from the reference (common.parity), and each parameter count."""
    only = only or {}

    def computes(framework: str, case: dict) -> bool:
        return case["name"] in only.get(framework, (case["name"],))

    outputs: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="dlcv-parity-") as tmp:
        def compute(framework: str) -> None:
            out = Path(tmp) / f"{framework}.npz"
            mine = [c for c in cases if computes(framework, c)]
            call_worker(framework, {"kind": "parity", "cases": mine, "out": str(out)})
            with np.load(out) as data:
                outputs[framework] = {k: data[k] for k in data.files}

        # All at once: a parity job runs one thread, and Keras on JAX spends most of its time
        # compiling each eager op, single-threaded (the registry on all four frameworks, 2 cores:
        # 159 s one after the other, 132 s at once).
        with ThreadPoolExecutor(len(frameworks)) as pool:
            for future in [pool.submit(compute, fw) for fw in frameworks]:
                future.result()  # the first failure (a one-line UserError) is raised
    result = {}
    for case in cases:
        prefix = case["name"] + "|"
        halves = {fw: {k[len(prefix):]: v for k, v in outputs[fw].items() if k.startswith(prefix)}
                  for fw in frameworks if computes(fw, case)}
        params = {fw: int(h.pop("params")) for fw, h in halves.items()}
        ref = reference(frameworks)
        result[case["name"]] = {"reference": ref, "params": params,
                                "max_abs_diff": {fw: compare_outputs(halves[ref], h)
                                                 for fw, h in halves.items() if fw != ref}}
    return result


def new_run_dir(out: str | Path, task: str) -> Path:
    """A fresh folder per invocation, `<out>/<YYYYmmdd-HHMMSS>-<task>`; mkdir is the lock, so
    parallel runs never share one."""
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{task_slug(task)}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_dir = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run folder under {out}")
