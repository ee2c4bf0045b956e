"""Result records: one flat JSON per framework run, written atomically, with its config.

Reports and tables are built only from these records (never from in-memory state), so whatever a
table shows can be re-derived from the files in the run directory.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

RECORD_KEYS = (
    "task", "framework", "model", "config", "params", "test_accuracy", "test_loss",
    "train_seconds", "epoch_seconds", "first_epoch_overhead_seconds", "history", "split_hash",
    "environment",
)


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _jsonable(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_records(run_dir: str | Path) -> list[dict]:
    """All records of a run directory, in a stable order (framework, then repeat)."""
    records = [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob("record-*.json"))]
    return sorted(records, key=lambda r: (r["framework"], r.get("repeat", 0)))


def base_environment(threads: int, device: str) -> dict:
    import numpy  # noqa: PLC0415  (kept local: this module is imported by tests without numpy use)

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "threads": threads,
        "device": device,
    }
