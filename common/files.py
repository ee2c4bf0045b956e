"""Files written atomically and JSON read back: the project's one writer and one reader.

Every file the project writes (records, reports, caches, converted weights, figures) goes
through `atomic_file`: a reader, a resumed study or a Ctrl-C never sees half a file. Imports
nothing of the project but its errors, so every stage (data, records, reports, workers) can use
it without an import cycle; numpy is imported only to write arrays.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from common.errors import RecordError


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A temporary file beside `path`, renamed over it when the block ends without an error
    (deleted otherwise): readers, resumed studies and Ctrl-C never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """A dict or a record dataclass as indented JSON, atomically."""
    if dataclasses.is_dataclass(data):
        data = data.to_dict() if hasattr(data, "to_dict") else dataclasses.asdict(data)
    with atomic_file(path) as file:
        json.dump(data, file, indent=2, default=_jsonable)


def write_text(path: str | Path, text: str) -> None:
    """`text` into the file at `path`, atomically (its folder is created if missing)."""
    with atomic_file(path) as file:
        file.write(text)


def write_arrays(path: str | Path, arrays: dict) -> None:
    """Named numpy arrays as an uncompressed .npz (fast to load), atomically. Through a file
    object: given a name, np.savez would append '.npz' to the temporary one."""
    import numpy as np  # the parent's reports never need it here

    with atomic_file(path, "wb") as file:
        np.savez(file, **arrays)


def save_figure(fig: Any, path: str | Path) -> None:
    """A matplotlib figure as PNG, atomically (the format is given: the temporary name has none)."""
    with atomic_file(path, "wb") as file:
        fig.savefig(file, format="png", dpi=110)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- reading


def read_json(path: str | Path) -> Any:
    """Parsed JSON; an unreadable or invalid file is one RecordError line naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else f"invalid JSON: {err}"
        raise RecordError(f"{path}: cannot read it ({reason})") from None
