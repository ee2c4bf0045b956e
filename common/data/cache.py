"""Where data is found and kept: the data and cache folders, verified downloads, and the
decoded-array cache (`<cache>/arrays/<task-slug>-<key>.npz`, keyed on the source files' paths,
sizes and mtimes, so a later load skips the slow decoding)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.data.dataset import (
    Dataset,
    _check_splits,
    _DownloadFailed,
    _one_line,
    _Source,
    _Splits,
    task_slug,
)
from common.errors import DataError
from common.files import write_arrays

DATA_DIR_ENV = "DLCV_DATA_DIR"
CACHE_DIR_ENV = "DLCV_CACHE_DIR"

# Bump when decoding changes, so stale decoded-array caches are not reused.
_ARRAY_CACHE_VERSION = 3  # 3: 16-bit images scaled, not clipped
_MAX_REASON_CHARS = 150

# pooch's downloader protocol: downloader(url, output_file, pooch) writes the file.
Downloader = Callable[[str, str, Any], None]


def default_cache_dir() -> Path:
    """$DLCV_CACHE_DIR if set, else ~/.cache/dlcv-compare."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcv-compare"


def _cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _load_cached(task: str, source: _Source, cache: Path, class_names: tuple[str, ...]) -> Dataset:
    """`source` decoded (or read from the decoded-array cache) and checked, as a Dataset."""
    splits = _decode_with_array_cache(task, source, cache)
    _check_splits(splits, source.description, len(class_names))
    return Dataset(task, *splits, class_names=class_names, source=source.description)


# ----------------------------------------------------------------------------- search helpers


def _user_data_dir(data_dir: str | Path | None) -> Path | None:
    """The folder to search before the cache: `data_dir`, else $DLCV_DATA_DIR, else None."""
    if data_dir is not None:
        path, origin = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get(DATA_DIR_ENV):
        path, origin = Path(os.environ[DATA_DIR_ENV]).expanduser(), DATA_DIR_ENV
    else:
        return None
    # A typo in an explicit folder should not silently fall through to a download.
    if not path.is_dir():
        raise DataError(f"{origin} {path} is not a folder; give the folder that holds the data")
    return path


def _retrieve(urls: Sequence[str], md5: str, fname: str, dest: Path,
              downloader: Downloader | None) -> Path:
    """Download `fname` into `dest` from the first working URL, verifying its md5 (pooch)."""
    import pooch  # imports requests; only needed when downloading

    failures: list[str] = []
    mismatched: list[str] = []
    for url in urls:
        try:
            return Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=fname, path=dest,
                                       downloader=downloader, progressbar=False))
        # A mirror can fail in many ways (DNS, TLS, HTTP, disk, a custom downloader); each one is
        # only a reason to try the next mirror.
        except Exception as error:  # noqa: BLE001
            if isinstance(error, ValueError) and "hash" in str(error).lower():
                mismatched.append(url)
            failures.append(f"{url}: {_one_line(error)}")
    if mismatched:
        raise DataError(
            f"checksum mismatch for {fname} downloaded from {', '.join(mismatched)} (expected md5 "
            f"{md5}): the download is corrupt; retry later, or pass --data-dir DIR with a good copy"
        )
    raise _DownloadFailed("; ".join(failures))


# ----------------------------------------------------------------------------- decoded-array cache


def _decode_with_array_cache(task: str, source: _Source, cache: Path) -> _Splits:
    """Load the decoded arrays from `<cache>/arrays` if `source` is unchanged, else decode and save."""
    slug = task_slug(task)
    key = hashlib.sha256(json.dumps(
        [_ARRAY_CACHE_VERSION, slug, [_file_identity(f) for f in source.files], source.key]
    ).encode()).hexdigest()[:16]
    path = cache / "arrays" / f"{slug}-{key}.npz"
    splits = _read_array_cache(path)
    if splits is None:
        splits = source.decode()
        _write_array_cache(path, splits)
    return splits


def _file_identity(path: str) -> tuple[str, int, int]:
    try:
        stat = os.stat(path)
    except OSError as error:
        raise DataError(f"cannot read {path} ({_one_line(error)}); check it is readable") from error
    return path, stat.st_size, stat.st_mtime_ns


def _read_array_cache(path: Path) -> _Splits | None:
    """The cached arrays, or None when missing or unusable (then they are simply decoded again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            splits = _Splits(*(arrays[name] for name in _Splits._fields))
    # Whatever is wrong with a cache file (truncated, foreign, old format), re-decoding fixes it.
    except Exception:  # noqa: BLE001
        return None
    shapes_ok = all(x.dtype == np.uint8 and x.ndim == 4 for x in (splits.x_train, splits.x_test))
    labels_ok = all(y.dtype == np.int64 and y.ndim == 1 for y in (splits.y_train, splits.y_test))
    return splits if shapes_ok and labels_ok else None


def _write_array_cache(path: Path, splits: _Splits) -> None:
    # The cache only saves time, so failing to write it must not fail the run. Uncompressed,
    # because compression would make every later load slower.
    try:
        write_arrays(path, splits._asdict())
    except OSError as error:
        warnings.warn(f"could not write the decoded-array cache {path} ({_one_line(error)}); "
                      "the data will be decoded again next time", stacklevel=3)

