"""Shared helpers: run compare.py as a user would (in its own process), or call compare.main
in-process for the error paths; build result records for report tests."""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.errors import UserError
from common.records import RunRecord, run_records

T = TypeVar("T")


def run_compare(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "compare.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def main_error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """compare.main(argv) in this process must fail with one line: a UserError, or argparse's
    exit 2 for a bad flag (its message on stderr). Returns that line."""
    import compare

    capsys.readouterr()
    with pytest.raises((UserError, SystemExit)) as err:
        compare.main(list(argv))
    if isinstance(err.value, SystemExit):
        assert err.value.code == 2
        message = capsys.readouterr().err.strip()
    else:
        message = str(err.value)
    assert message and "\n" not in message, message
    return message


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one line on stderr (no traceback); that line."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def records_of(run_dir: Path) -> list[RunRecord]:
    return run_records(run_dir)


# A small run: one epoch on 200 digits, both frameworks (the shared start of several tests)
# --threads fixed: its default follows the machine's load, and another thread count sums in
# another order (the same command is reproduced bit for bit only with the same threads).
SMALL = ("--framework", "both", "--epochs", "1", "--train-size", "200", "--no-plots",
         "--threads", "1")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test, and every process it starts, keeps decoded data and converted weights in a
    folder of this session ($DLCV_CACHE_DIR), never in the user's ~/.cache/dlcv-compare."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["DLCV_CACHE_DIR"] = str(folder)
    return folder


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], T]) -> T:
    """`build(folder)` once per test session. Under pytest-xdist the first worker that asks
    builds it in a folder of the session that every worker reads, and keeps the (pickled)
    result there; the others wait for it (a lock file) and read it: a session fixture that test
    files on several workers use is built once, not once per worker. A failed build leaves no
    result (the next worker builds again and fails alike). Without xdist: build(mktemp)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent / f"built-once-{name}"  # this session's
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result = root / "result.pickle"
        if result.is_file():
            return pickle.loads(result.read_bytes())
        shutil.rmtree(root / "data", ignore_errors=True)  # what a failed build left
        (root / "data").mkdir()
        value = build(root / "data")
        (root / "result.tmp").write_bytes(pickle.dumps(value))
        (root / "result.tmp").replace(result)  # whole, or not there
        return value


def _small_runs(out: Path):
    import contextlib
    import io

    import compare

    proc = run_compare("--task", "digits", *SMALL, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        frame = compare.run(task="digits", framework="both", epochs=1, train_size=200,
                            no_plots=True, threads=1, out=str(out))
    return out, frame, shown.getvalue()


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory):
    """The same SMALL command twice into one folder: the command line, then compare.run (its
    output captured as a notebook cell would show it). Returns (out, frame, shown). Built once
    for the session (test_augment, test_crossrun and test_parity read it): nothing may write
    into its run folders."""
    return built_once(tmp_path_factory, "small", _small_runs)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`compare.py --task digits --framework both` for 3 epochs (the default 20 shows nothing
    more), with a time-to-accuracy column, shared by the end-to-end tests."""
    out = tmp_path_factory.mktemp("results")
    proc = run_compare("--task", "digits", "--framework", "both", "--epochs", "3",
                       "--target-accuracy", "0.9", "--out", str(out))
    dirs = run_dirs(out)
    return proc, dirs[0] if dirs else out


# Expensive shared fixtures (session-scoped; pytest.ini's --dist loadfile keeps a file's tests on
# one worker, so each is built once per worker that needs it, or once per session through
# built_once): a test that uses one is slow.
SHARED_FIXTURES = ("parity", "runs", "small_runs", "digits_run", "sweep_run",
                   "built", "keras_resnet50v2", "path_weights", "behaviour", "cli_and_api",
                   "local_ray")
# A test that starts framework processes (a run, a worker job, a parity run) takes seconds:
# it is marked slow, so `pytest -m "not slow"` is the quick loop of everything else.
STARTS_PROCESSES = ("run_compare(", "compare.run(", "subprocess.run(", "subprocess.Popen(",
                    "call_worker(", "run_parity(", "run_tasks(", "main_error(capsys, *SMALL")


# Test files by their time in the suite, longest first (seconds on 2 cores, AMD EPYC,
# 2026-12-01: transfer 127, parity 95, studies 58, cli 45, frameworks 38, ray 34, specs 25,
# inputs 24, keras_backends 23): pytest.ini's --dist loadfile hands each xdist worker whole
# files in collection order (--no-loadscope-reorder), so the long ones start first and the
# short ones fill in at the end, instead of one worker running a long file alone at the end.
LONGEST_FIRST = ("test_transfer.py", "test_parity.py", "test_studies.py", "test_cli.py",
                 "test_frameworks.py", "test_ray.py", "test_specs.py", "test_inputs.py",
                 "test_keras_backends.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    import inspect

    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep order
    for item in items:
        shared = next((f for f in SHARED_FIXTURES if f in item.fixturenames), None)
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function is not None else ""
        if shared is not None or any(call in source for call in STARTS_PROCESSES):
            item.add_marker(pytest.mark.slow)
