"""Dataset loading for dlcv-compare: digits, MNIST, CIFAR-10 and your own images as uint8 NHWC.

Both framework back-ends train on exactly the arrays returned by these loaders (reached through
`common.tasks.load_dataset`), so this module is the single place that finds, downloads, verifies
and decodes the data. It is framework-free: it must never import torch, tensorflow or keras (not
even indirectly).

Where MNIST and CIFAR-10 come from, in order:
  1. `data_dir` (or, when it is None, the folder named by $DLCV_DATA_DIR) and a few conventional
     sub-folders of it; for CIFAR-10 also a `.tar.gz` archive there, extracted once into the cache;
  2. the cache folder (`cache_dir`, else $DLCV_CACHE_DIR, else ~/.cache/dlcv-compare);
  3. a download into the cache from the canonical mirrors, verified by md5 (if `download`).
Your own images (tasks folder:PATH and csv:FILE):
  - folder:PATH holds one sub-folder per class (`PATH/<class>/*.jpg|png|...`), or
    `PATH/train/<class>/` and `PATH/test/<class>/`;
  - csv:FILE lists `filename,label` rows (a header row is detected), the images in `image_dir`.
  They are converted to RGB and resized to `image_size` (square). Without a given test split, a
  seeded, stratified 20% of the images is held out as the test set. Classes are sorted by name.
Decoded arrays are kept as `<cache>/arrays/<task-slug>-<key>.npz`, keyed on the source files'
paths, sizes and mtimes (and, for own images, the image size and the split), so later loads skip
the slow parsing/decoding.

Every failure is a `DataError` (or `UserError`) with a one-line message that says what is wrong
and what to do; the CLI prints it without a traceback.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from common.errors import DataError, UserError
from common.records import write_arrays, write_text

DATA_DIR_ENV = "DLCV_DATA_DIR"
CACHE_DIR_ENV = "DLCV_CACHE_DIR"

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
DIGITS_MAX_VALUE = 16  # load_digits pixels are counts 0..16 (4x4 blocks of a 32x32 bitmap)

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# md5 of the official .gz files (as listed in torchvision.datasets.MNIST.resources). Only
# downloads are checked: local copies may be recompressed or raw, and the IDX parser validates them.
MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_CLASSES = tuple(str(d) for d in range(10))
IDX_IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_IMAGE_SIZE = 32
# Archive file name -> the folder it holds at its top level.
CIFAR10_ARCHIVES = {
    "cifar10-jpg.tar.gz": "cifar10-jpg",
    "cifar-10-python.tar.gz": "cifar-10-batches-py",
}
CIFAR10_SUBFOLDERS = ("cifar-10-batches-py", "cifar10-jpg", "cifar10")

# Image files of CIFAR-10 folders and own images, and the PIL formats they may hold: naming the
# formats stops PIL from trying every plugin on a file that is not an image.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")

OWN_IMAGE_SIZE = 32  # pixels, square, when no image_size is given: the CIFAR-10 CNN's input
OWN_MIN_IMAGE_SIZE = 8
OWN_TEST_FRACTION = 0.2
OWN_SPLIT_SEED = 0
OWN_KINDS = ("folder", "csv")  # the task prefixes: folder:PATH, csv:FILE

# Bump when decoding changes, so stale decoded-array caches are not reused.
_ARRAY_CACHE_VERSION = 3  # 3: 16-bit images scaled, not clipped
_MAX_REASON_CHARS = 150

# pooch's downloader protocol: downloader(url, output_file, pooch) writes the file.
Downloader = Callable[[str, str, Any], None]


@dataclass(frozen=True)
class Dataset:
    """A task's train and test arrays, identical for both framework back-ends."""

    name: str  # "digits" | "mnist" | "cifar10" | the task string of own images ("folder:PATH")
    x_train: np.ndarray  # uint8, NHWC (N, H, W, C)  (MNIST/digits: C=1)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray  # uint8 NHWC
    y_test: np.ndarray  # int64
    class_names: tuple[str, ...]
    source: str  # human-readable: which files/dir it was read from
    notes: tuple[str, ...] = ()  # facts a report must state (e.g. a test split not stratified)


class _Splits(NamedTuple):
    """The four decoded arrays of a dataset (also the key names in the decoded-array cache)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class _Source:
    """Data found on disk: a description, the files it depends on, and how to decode them."""

    description: str
    files: tuple[str, ...]  # absolute paths; their sizes and mtimes key the decoded-array cache
    decode: Callable[[], _Splits]
    key: tuple = ()  # JSON-able; whatever else changes the decoded arrays (own images: size, split)


class _DownloadFailed(Exception):
    """Every mirror failed (offline, HTTP error...); the caller turns this into 'not found'."""


# ----------------------------------------------------------------------------- public API


def default_cache_dir() -> Path:
    """$DLCV_CACHE_DIR if set, else ~/.cache/dlcv-compare."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcv-compare"


def task_slug(task: str) -> str:
    """A file-name-safe name: 'digits' -> 'digits', 'folder:/a/b/pets' -> 'folder-pets',
    'csv:/x/train.csv' -> 'csv-train' (the decoded-array cache and run folders are named by it)."""
    kind, colon, where = task.partition(":")
    if colon and kind in OWN_KINDS:
        # resolve() so that 'folder:.' is named after the folder it means
        stem = Path(where).expanduser().resolve().stem if where else ""
        task = f"{kind}-{stem}" if stem else kind
    return re.sub(r"[^A-Za-z0-9._-]+", "-", task)


# Every loader takes the task string and the same keyword options (common.tasks.load_dataset
# passes them all); each ignores the options that do not apply to it.


def load_digits(task: str = "digits", **_options: Any) -> Dataset:
    """scikit-learn's 8x8 digits with a stratified, seeded 20% test split (offline, not cached)."""
    # sklearn is slow to import and only this task needs it.
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    x = np.round(digits.images * 255 / DIGITS_MAX_VALUE).astype(np.uint8)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    # sklearn only takes an int or a RandomState; wrapping default_rng(seed)'s bit generator keeps
    # the split driven by numpy's default_rng as specified.
    rng = np.random.RandomState(np.random.default_rng(DIGITS_SPLIT_SEED).bit_generator)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=rng
    )
    return Dataset(
        "digits", x_train, y_train, x_test, y_test,
        class_names=MNIST_CLASSES,
        source=(f"sklearn.datasets.load_digits, stratified {DIGITS_TEST_FRACTION:.0%} test split "
                f"(seed {DIGITS_SPLIT_SEED})"),
    )


def load_mnist(task: str = "mnist", *, data_dir: str | Path | None = None,
               cache_dir: str | Path | None = None, download: bool = True,
               downloader: Downloader | None = None, **_options: Any) -> Dataset:
    """MNIST from IDX files (raw or .gz); `downloader` is passed to pooch (tests fake the network)."""
    cache = _cache_dir(cache_dir)
    source = _locate_mnist(_user_data_dir(data_dir), cache, download, downloader)
    return _load_cached("mnist", source, cache, MNIST_CLASSES)


def load_cifar10(task: str = "cifar10", *, data_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, download: bool = True,
                 downloader: Downloader | None = None, **_options: Any) -> Dataset:
    """CIFAR-10 from the python batches, 32x32 image folders, or their archives."""
    cache = _cache_dir(cache_dir)
    source = _locate_cifar10(_user_data_dir(data_dir), cache, download, downloader)
    return _load_cached("cifar10", source, cache, CIFAR10_CLASSES)


def load_own_images(task: str, *, cache_dir: str | Path | None = None,
                    image_size: int | None = None, image_dir: str | Path | None = None,
                    **_options: Any) -> Dataset:
    """A folder:PATH or csv:FILE task (see the module docstring), decoded once into the cache."""
    size = OWN_IMAGE_SIZE if image_size is None else image_size
    if size < OWN_MIN_IMAGE_SIZE:
        raise UserError(f"--image-size must be at least {OWN_MIN_IMAGE_SIZE}")
    kind, _, where = task.partition(":")
    if kind not in OWN_KINDS or not where:
        raise UserError(f"{task!r} is not folder:PATH or csv:FILE; give the path after the colon")
    given = Path(where).expanduser()
    what = "folder" if kind == "folder" else "CSV file"
    if not (given.is_dir() if kind == "folder" else given.is_file()):
        raise DataError(f"{given} does not exist or is not a {what}; --task {kind}:PATH needs "
                        f"an existing {what}")
    path = given.resolve()  # absolute paths key the cache, whatever the working folder
    source, class_names, notes = _own_images_source(kind, path, size, image_dir)
    return dataclasses.replace(_load_cached(task, source, _cache_dir(cache_dir), class_names),
                               notes=notes)


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


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def _corrupt(path: str | Path, detail: str) -> DataError:
    return DataError(
        f"{path} is truncated or corrupt ({detail}); re-download it or replace it with a good copy"
    )


def _not_found(what: str, looked: Sequence[Path], notes: Sequence[str], how: str) -> DataError:
    places = ", ".join(str(p) for p in looked)
    return DataError(f"{what} data not found: looked in {places}; {'; '.join(notes)}; {how}")


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


# ----------------------------------------------------------------------------- MNIST


def _locate_mnist(user_dir: Path | None, cache: Path, download: bool,
                  downloader: Downloader | None) -> _Source:
    cache_folder = cache / "mnist"
    folders = [user_dir, user_dir / "mnist", user_dir / "MNIST" / "raw"] if user_dir else []
    folders.append(cache_folder)
    notes = []
    for folder in folders:
        found, missing = _find_idx_files(folder)
        if not missing:
            return _mnist_source(folder, found)
        if found:
            notes.append(f"{folder} lacks {', '.join(missing)}")
    if download:
        try:
            for name, md5 in MNIST_GZ_MD5.items():
                urls = [mirror + name + ".gz" for mirror in MNIST_MIRRORS]
                _retrieve(urls, md5, name + ".gz", cache_folder, downloader)
            found, _ = _find_idx_files(cache_folder)
            return _mnist_source(cache_folder, found)
        except _DownloadFailed as error:
            notes.append(f"download failed ({error})")
    else:
        notes.append("downloading is off")
    raise _not_found("MNIST", folders, notes, (
        f"pass --data-dir DIR with the four IDX files ({', '.join(MNIST_GZ_MD5)}, raw or .gz) "
        f"or set {DATA_DIR_ENV}"))


def _find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four MNIST files in `folder` (raw preferred, it skips decompression) and those missing."""
    found, missing = {}, []
    for name in MNIST_GZ_MD5:
        candidates = [folder / name, folder / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    return found, missing


def _mnist_source(folder: Path, files: dict[str, Path]) -> _Source:
    def decode() -> _Splits:
        def images(name: str) -> np.ndarray:
            return _read_idx(files[name], IDX_IMAGES_MAGIC)[..., np.newaxis]

        def labels(name: str) -> np.ndarray:
            return _read_idx(files[name], IDX_LABELS_MAGIC).astype(np.int64)

        return _Splits(images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
                      images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))

    names = ", ".join(p.name for p in files.values())
    return _Source(f"MNIST IDX files {names} in {folder.resolve()}",
                   tuple(str(p.resolve()) for p in files.values()), decode)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (raw or gzipped), checking its header against its size."""
    data = _read_maybe_gzipped(path)
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _corrupt(path, f"{len(data)} bytes, shorter than its IDX header")
    found_magic = int.from_bytes(data[:4], "big")
    if found_magic != magic:
        raise _corrupt(path, f"IDX magic number {found_magic}, expected {magic}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    payload, expected = len(data) - header_size, math.prod(dims)
    if payload != expected:
        shape = "x".join(map(str, dims))
        raise _corrupt(path, f"{payload} data bytes but its header says {shape} = {expected}")
    # Copy: frombuffer over bytes is read-only, and callers may want to modify their arrays.
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(dims).copy()


def _read_maybe_gzipped(path: Path) -> bytes:
    # Sniff the gzip magic rather than trust the suffix: copies get renamed and (de)compressed.
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path} ({_one_line(error)}); check it exists and is readable"
                        ) from error
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise _corrupt(path, f"gzip: {_one_line(error) or type(error).__name__}") from error


# ----------------------------------------------------------------------------- CIFAR-10


def _locate_cifar10(user_dir: Path | None, cache: Path, download: bool,
                    downloader: Downloader | None) -> _Source:
    cache_folder = cache / "cifar10"
    looked: list[Path] = []
    for base in ([user_dir] if user_dir else []) + [cache_folder]:
        source = _find_cifar10_in(base, cache_folder, looked)
        if source is not None:
            return source
    if download:
        try:
            archive = _retrieve([CIFAR10_URL], CIFAR10_MD5, "cifar-10-python.tar.gz", cache_folder,
                                downloader)
            return _cifar10_from_archive(archive, cache_folder)
        except _DownloadFailed as error:
            note = f"download failed ({error})"
    else:
        note = "downloading is off"
    archives = " or ".join(CIFAR10_ARCHIVES)
    raise _not_found("CIFAR-10", looked, [f"no {archives} there either", note], (
        "pass --data-dir DIR holding cifar-10-batches-py/ (the python batches), an image-folder "
        f"copy with train/<class>/ and test/<class>/ (e.g. cifar10-jpg/), or {archives}; "
        f"or set {DATA_DIR_ENV}"))


def _find_cifar10_in(base: Path, extract_to: Path, looked: list[Path]) -> _Source | None:
    """CIFAR-10 in `base` or a conventional sub-folder, else in an archive there (extracted once)."""
    for folder in (base, *(base / sub for sub in CIFAR10_SUBFOLDERS)):
        looked.append(folder)
        source = _cifar10_source(folder)
        if source is not None:
            return source
    for archive_name in CIFAR10_ARCHIVES:
        if (base / archive_name).is_file():
            return _cifar10_from_archive(base / archive_name, extract_to)
    return None


def _cifar10_source(folder: Path) -> _Source | None:
    """The CIFAR-10 copy in `folder` (python batches or image folders), or None if there is none."""
    if (folder / CIFAR10_TRAIN_BATCHES[0]).is_file():
        return _cifar10_batches_source(folder)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return _cifar10_images_source(folder)
    return None


def _cifar10_from_archive(archive: Path, extract_to: Path) -> _Source:
    folder = _extract_archive(archive, extract_to, CIFAR10_ARCHIVES[archive.name])
    source = _cifar10_source(folder)
    if source is None:
        raise DataError(f"{archive} holds neither CIFAR-10 python batches nor train/ and test/ "
                        "image folders; replace it with a good copy")
    # Extraction keeps the archive's mtimes, so key the decoded-array cache on the archive too.
    return dataclasses.replace(source, description=f"{source.description} (from {archive})",
                               files=(*source.files, str(archive.resolve())))


def _extract_archive(archive: Path, dest_parent: Path, top: str) -> Path:
    """Extract `archive` (whose top-level folder is `top`) into `dest_parent`, once per archive.

    A stamp file records which archive (path, size, mtime) the folder came from, so an unchanged
    archive is not extracted again; extraction goes through a temporary folder so an interrupted
    run never leaves a half-extracted folder that looks complete.
    """
    target, stamp = dest_parent / top, dest_parent / f".{top}.extracted-from"
    identity = json.dumps(_file_identity(str(archive.resolve())))
    if target.is_dir() and stamp.is_file() and stamp.read_text() == identity:
        return target
    try:
        dest_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest_parent, prefix=f".{top}-") as tmp:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
            if not (Path(tmp) / top).is_dir():
                raise DataError(f"{archive} has no top-level folder {top}/; replace it with a "
                                "good copy")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(Path(tmp) / top, target)
        write_text(stamp, identity)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"cannot extract {archive} into {dest_parent} ({_one_line(error)}); re-download or "
            "replace the archive if it is truncated or corrupt, and check the cache is writable"
        ) from error
    return target


def _cifar10_batches_source(folder: Path) -> _Source:
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; re-extract cifar-10-python.tar.gz "
                        "or pass --data-dir with a complete copy")
    paths = [folder.resolve() / name for name in names]

    def decode() -> _Splits:
        train = [_read_cifar10_batch(p) for p in paths[:-1]]
        test_rows, y_test = _read_cifar10_batch(paths[-1])
        train_rows = np.concatenate([rows for rows, _ in train])
        return _Splits(_planar_rows_to_nhwc(train_rows), np.concatenate([y for _, y in train]),
                       _planar_rows_to_nhwc(test_rows), y_test)

    return _Source(f"CIFAR-10 python batches in {folder.resolve()}",
                   tuple(str(p) for p in paths), decode)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of lists, bytes and numpy arrays) and nothing else.

    Pickle can run arbitrary code; a data file has no business doing that, so only the globals
    needed to rebuild numpy arrays are allowed (old numpy 1.x / Python 2 names included).
    """

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a data file")
        return super().find_class(module, name)


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: its (N, 3072) uint8 image rows and int64 labels."""
    try:
        with open(path, "rb") as file:
            batch = _NumpyOnlyUnpickler(file, encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    # A corrupt pickle can fail with almost any exception type; all mean the same thing here.
    except Exception as error:  # noqa: BLE001
        raise _corrupt(path, f"not a CIFAR-10 python batch: {type(error).__name__}: "
                             f"{_one_line(error)}") from error
    size = CIFAR10_IMAGE_SIZE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * size * size:
        raise _corrupt(path, f"data is {data.dtype} {data.shape}, expected uint8 (N, {3*size*size})")
    if labels.shape != (len(data),):
        raise _corrupt(path, f"{len(data)} images but {labels.size} labels")
    return data, labels


def _planar_rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    # Each row is planar: 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    size = CIFAR10_IMAGE_SIZE
    return np.ascontiguousarray(rows.reshape(-1, 3, size, size).transpose(0, 2, 3, 1))


def _cifar10_images_source(folder: Path) -> _Source:
    root = folder.resolve()
    train_files, train_classes = _walk_class_folders(str(root / "train"), CIFAR10_CLASSES)
    test_files, test_classes = _walk_class_folders(str(root / "test"), CIFAR10_CLASSES)
    y_train = _labels(train_classes, CIFAR10_CLASSES)
    y_test = _labels(test_classes, CIFAR10_CLASSES)
    size = CIFAR10_IMAGE_SIZE

    def decode() -> _Splits:
        # No resizing: a CIFAR-10 image of another size means a wrong copy, not one to scale.
        x = _decode_images([*train_files, *test_files], size, resize=False)  # one error count
        return _Splits(x[:len(train_files)], y_train, x[len(train_files):], y_test)

    return _Source(f"CIFAR-10 image folders {root}/{{train,test}}/<class>",
                   tuple(train_files + test_files), decode)


# ----------------------------------------------------------------------------- own images


def _own_images_source(kind: str, path: Path, size: int, image_dir: str | Path | None
                       ) -> tuple[_Source, tuple[str, ...], tuple[str, ...]]:
    """The source of a folder: or csv: task at the absolute `path`, its class names, and notes
    for the report (a test split that could not be stratified)."""
    test: tuple[list[str], list[str]] | None = None
    label_files: tuple[str, ...] = ()
    if kind == "folder":
        if (path / "train").is_dir() and (path / "test").is_dir():
            train = _walk_class_folders(str(path / "train"))
            test = _walk_class_folders(str(path / "test"))
        else:
            train = _walk_class_folders(str(path))
    else:
        if image_dir is None:
            raise UserError("--task csv:FILE needs --image-dir DIR, the folder of its images")
        train = _read_csv(path, Path(image_dir).expanduser().resolve())
        label_files = (str(path),)
    classes = tuple(sorted(set(train[1]) | (set(test[1]) if test else set())))
    if len(classes) < 2:
        raise DataError(f"{path} has {len(classes)} class; a classifier needs at least two")
    notes: tuple[str, ...] = ()
    if test is None:
        train, test, notes = _hold_out(*train)
    (train_files, train_classes), (test_files, test_classes) = train, test
    y_train, y_test = _labels(train_classes, classes), _labels(test_classes, classes)

    def decode() -> _Splits:
        # One pass over every file, so an error counts all the unusable ones.
        x = _decode_images([*train_files, *test_files], size, resize=True)
        return _Splits(x[:len(train_files)], y_train, x[len(train_files):], y_test)

    # The files' order and the train count fix the split; the CSV's identity fixes its labels.
    key = (("image_size", size), ("train_images", len(train_files)), ("classes", classes))
    source = _Source(f"{path} ({size}x{size} RGB)", (*train_files, *test_files, *label_files),
                     decode, key)
    return source, classes, notes


def _read_csv(csv_file: Path, image_dir: Path) -> tuple[list[str], list[str]]:
    """(image paths, class names) of the `filename,label` rows of `csv_file`.

    Every cell is read as the text in the file: pandas' default turns `NA`, `N/A`, `null`,
    `None`, `nan` and empty cells into missing values, which would make a class named `NA`
    vanish. Raises DataError for an unreadable file, fewer than two columns, an empty file name
    or label (naming the row), or listed images missing from `image_dir`."""
    import pandas as pd  # slow to import and only this task needs it

    try:
        table = pd.read_csv(csv_file, header=None, dtype=str, skipinitialspace=True,
                            keep_default_na=False, na_filter=False)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {csv_file} as CSV ({type(error).__name__}); it must hold "
                        "rows of filename,label") from None
    if table.shape[1] < 2:
        raise DataError(f"{csv_file} needs two columns, filename and label")
    first_row = 1
    if not (image_dir / str(table.iat[0, 0])).exists():  # a header row such as "id,label"
        table, first_row = table.iloc[1:], 2
    names = [str(n).strip() for n in table.iloc[:, 0]]
    labels = [str(c).strip() for c in table.iloc[:, 1]]
    for row, (name, label) in enumerate(zip(names, labels), start=first_row):
        if not name or not label:
            raise DataError(f"{csv_file} row {row} has an empty "
                            f"{'file name' if not name else 'label'}; fill it in or remove the row")
    missing = [n for n in names if not (image_dir / n).is_file()]
    if missing:
        raise DataError(f"{len(missing)} images listed in {csv_file} are not in {image_dir} "
                        f"(first: {missing[0]}); check --image-dir")
    return [str(image_dir / n) for n in names], labels


def _hold_out(files: list[str], classes: list[str]) -> tuple[
        tuple[list[str], list[str]], tuple[list[str], list[str]], tuple[str, ...]]:
    """A seeded test split of OWN_TEST_FRACTION, stratified by class where every class allows it
    (scikit-learn's train_test_split needs at least 2 images per class); otherwise random, with
    a note naming the classes too small to stratify."""
    from sklearn.model_selection import train_test_split  # slow to import; only needed here

    notes: tuple[str, ...] = ()
    try:
        train_f, test_f, train_c, test_c = train_test_split(
            files, classes, test_size=OWN_TEST_FRACTION, random_state=OWN_SPLIT_SEED,
            stratify=classes)
    except ValueError as error:  # a class too small to stratify
        counts = {c: classes.count(c) for c in sorted(set(classes))}
        small = ", ".join(f"{c!r} ({n})" for c, n in counts.items() if n < 2) or "none"
        notes = (f"the test split is not stratified: stratifying failed ({_one_line(error)}); "
                 f"classes with fewer than 2 images: {small}",)
        train_f, test_f, train_c, test_c = train_test_split(
            files, classes, test_size=OWN_TEST_FRACTION, random_state=OWN_SPLIT_SEED)
    return (train_f, train_c), (test_f, test_c), notes


# ----------------------------------------------------------------------------- image folders


def _walk_class_folders(root: str, classes: Sequence[str] | None = None
                        ) -> tuple[list[str], list[str]]:
    """Image paths under root/<class>/, in class then file-name order, and each one's class.

    `classes`: the exact class folders `root` must hold, each with images (CIFAR-10); None: every
    sub-folder, sorted by name, empty ones skipped (own images: a class may lack test images).
    """
    # Plain strings and os.scandir: pathlib costs seconds over 60,000 files.
    with os.scandir(root) as entries:
        present = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if classes is not None and set(present) != set(classes):
        missing = [c for c in classes if c not in present]
        unknown = [c for c in present if c not in classes]
        raise DataError(
            f"{root} must hold exactly one folder per class ({', '.join(classes)}); "
            f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}; "
            "rename or re-extract the folders")
    files: list[str] = []
    names: list[str] = []
    for name in present if classes is None else classes:
        class_dir = os.path.join(root, name)
        # Hidden files are skipped: macOS copies leave '._photo.jpg' metadata beside the images.
        images = sorted(f for f in os.listdir(class_dir)
                        if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
        if not images and classes is not None:
            raise DataError(f"{class_dir} holds no {'/'.join(IMAGE_SUFFIXES)} images; "
                            "re-extract the data")
        files += [os.path.join(class_dir, f) for f in images]
        names += [name] * len(images)
    if not files:
        raise DataError(f"{root} holds no images in class sub-folders (<class>/*.jpg|png); "
                        "give a folder with one sub-folder per class")
    return files, names


def _labels(names: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    index = {name: label for label, name in enumerate(classes)}
    return np.array([index[name] for name in names], dtype=np.int64)


# Pillow modes that hold 8 bits per channel and that Pillow's own convert("RGB") maps to RGB
# exactly (palette and 1-bit images are expanded, alpha dropped as TensorFlow's decode_png(channels=3)
# does, CMYK and YCbCr transformed).
_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX",
                              "CMYK", "YCbCr"})
# 16-bit integer modes (Pillow's I;16 family, and I as Pillow opens some 16-bit PNGs): reduced to
# 8 bits by keeping the high byte, as libpng's png_set_strip_16 does inside TensorFlow's
# decode_png(dtype=uint8). Pillow's convert("RGB") would clip every value above 255 to 255.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Where several files fail, the error names this many of them.
_NAMED_FAILURES = 3


def _decode_images(paths: Sequence[str], size: int, resize: bool) -> np.ndarray:
    """(len(paths), size, size, 3) uint8 RGB. Raises DataError naming how many files failed and
    the first _NAMED_FAILURES of them in path order, with each one's reason."""
    # Single-threaded on purpose: for 32x32 images PIL's per-file Python overhead dominates and
    # holds the GIL, so threads measured slower; the result is cached as .npz anyway.
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    failures: list[tuple[str, str]] = []
    for i, path in enumerate(paths):
        try:
            out[i] = _decode_image(path, size, resize)
        except DataError as error:
            failures.append((path, str(error)))
    failures = [message for _, message in sorted(failures)]
    if len(failures) == 1:
        raise DataError(failures[0])
    if failures:
        raise DataError(f"{len(failures)} of {len(paths)} images cannot be used; the first "
                        f"{min(len(failures), _NAMED_FAILURES)}: "
                        + " | ".join(failures[:_NAMED_FAILURES]))
    return out


def to_rgb8(image: Image.Image, path: str) -> np.ndarray:
    """A Pillow image of any supported mode as (H, W, 3) uint8 RGB, converted by scaling, never by
    clipping: 8-bit modes through Pillow's convert("RGB"), 16-bit grey (I;16*, and I with values
    in 0..65535) by their high byte, as TensorFlow's PNG decoder does. Raises DataError naming
    `path` and the mode for any other mode (F, a 32-bit I outside 0..65535, LAB, HSV, ...)."""
    mode = image.mode
    if mode in _EIGHT_BIT_MODES:
        return np.asarray(image if mode == "RGB" else image.convert("RGB"))
    if mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise DataError(f"{path} has 32-bit integer pixels (Pillow mode {mode}, values "
                            f"{grey.min()}..{grey.max()}) with no defined 8-bit scaling; save it "
                            "as an 8- or 16-bit PNG")
        return np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    raise DataError(f"{path} has Pillow mode {mode}, which has no defined conversion to 8-bit RGB; "
                    "save it as an 8-bit RGB or greyscale image")


def _decode_image(path: str, size: int, resize: bool) -> np.ndarray:
    """The image at `path` as (size, size, 3) uint8 RGB (to_rgb8); another size is resized
    (bilinear, after the conversion to 8 bits) if `resize`, else a DataError."""
    try:
        # Reading the whole file first is faster than letting PIL read a small one piecemeal.
        with open(path, "rb") as file:
            image = Image.open(io.BytesIO(file.read()), formats=_IMAGE_FORMATS)
            image.load()
    except (OSError, ValueError, SyntaxError) as error:  # PIL's "cannot decode" exceptions
        raise DataError(f"{path} is not a readable image ({_one_line(error)}); replace or remove "
                        "it, or re-extract the data") from error
    if image.size != (size, size) and not resize:  # only CIFAR-10 folders are strict
        raise DataError(f"{path} is {image.size[0]}x{image.size[1]} pixels, expected "
                        f"{size}x{size}; replace it with the original CIFAR-10 image")
    rgb = to_rgb8(image, path)
    if image.size != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))
    return rgb


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


# ----------------------------------------------------------------------------- validation


def _check_splits(splits: _Splits, description: str, num_classes: int) -> None:
    """Images and labels must pair up, and labels must name a class."""
    for split, x, y in (("training", splits.x_train, splits.y_train),
                        ("test", splits.x_test, splits.y_test)):
        if len(x) != len(y):
            raise DataError(f"{description}: {len(x)} {split} images but {len(y)} labels; the "
                            "files do not belong together, replace them with a matching set")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{description}: {split} labels outside 0..{num_classes - 1}; the "
                            "label file is corrupt, re-download or replace it")
    if splits.x_train.shape[1:] != splits.x_test.shape[1:]:
        raise DataError(f"{description}: training images are {splits.x_train.shape[1:]} but test "
                        f"images {splits.x_test.shape[1:]}; replace them with a matching set")
