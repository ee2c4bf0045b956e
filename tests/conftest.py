"""Shared helpers: run compare.py as a user would, in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_compare(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "compare.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one line on stderr (no traceback); that line."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("record-*.json"))]


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One full `compare.py --task digits --framework both`, shared by the end-to-end tests."""
    out = tmp_path_factory.mktemp("results")
    proc = run_compare("--task", "digits", "--framework", "both", "--out", str(out))
    dirs = run_dirs(out)
    return proc, dirs[0] if dirs else out
