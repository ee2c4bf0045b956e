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
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from common.errors import UserError
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


@dataclass(frozen=True)
class Executor:
    """Where framework jobs run (--executor): `local`, one after the other on this machine, or
    `ray`, each a Ray Core task on a Ray cluster (common.ray_executor). `address`: the cluster to
    join (--ray-address; None: $RAY_ADDRESS, else an embedded single-machine runtime);
    `exclusive`: at most one job per node at a time (timing-grade runs on Ray)."""

    kind: str = "local"
    address: str | None = None
    exclusive: bool = False


LOCAL = Executor()


def run_local(jobs: Iterable[WorkerJob]) -> list[str]:
    """The local executor: each job in its own process, one after the other (run_worker).
    Returns failed-job lines as common.executors.run_jobs does."""
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
    lines = proc.stderr.strip().splitlines()
    if any(line.startswith("error: ") for line in lines):
        raise UserError(error_line(lines)[len("error: "):])
    raise UserError(f"{framework}: the {job['kind']} job failed (exit {proc.returncode}): "
                    f"{error_line(lines)}")


def error_line(stderr_lines: list[str]) -> str:
    """What a failed framework process said: its last `error: ...` line (common.worker's one
    error rule), else its last line of stderr cut to 300 characters ('' if none)."""
    errors = [line for line in stderr_lines if line.startswith("error: ")]
    return errors[-1] if errors else " ".join(stderr_lines[-1:])[:300]


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
