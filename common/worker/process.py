"""What every job of a framework process shares: importing the framework's own code by name,
quieting TensorFlow's start-up lines, and the machine facts of a record.
"""

from __future__ import annotations

import importlib
import os
import platform
import signal
import sys
import time
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

import numpy as np

from common.frameworks import FRAMEWORKS
from common.machine import cpu_model

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
        # where it ran: the local executor's machine, or the Ray node that common.ray_executor
        # names in the job's environment
        "executor": os.environ.get("DLCV_EXECUTOR", "local"),
        "node": os.environ.get("DLCV_NODE") or platform.node(),
        "thread_policy": dict(THREAD_POLICY_IN_FORCE),
        "date": time.strftime("%Y-%m-%d"),
    }


def die_with_parent(parent_pid: str | None) -> None:
    """Started by a Ray task (common.ray_executor sets DLCV_PARENT_PID): end when that process
    ends, as a forced ray.cancel kills it and this process must not train on (Linux's
    PR_SET_PDEATHSIG; where it is missing, nothing happens). If the parent is already gone,
    exit 130 at once."""
    if not parent_pid:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent_pid):  # it died before prctl took effect
        os._exit(130)
