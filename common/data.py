"""Dataset loading for dlcv-compare: digits, MNIST and CIFAR-10 as uint8 NHWC arrays.

Both framework back-ends train on exactly the arrays returned by `load_dataset`, so this module
is the single place that finds, downloads, verifies and decodes the data. It is framework-free:
it must never import torch, tensorflow or keras (not even indirectly).

Where the data comes from, in order:
  1. `data_dir` (or, when it is None, the folder named by $DLCV_DATA_DIR) and a few conventional
     sub-folders of it; for CIFAR-10 also a `.tar.gz` archive there, extracted once into the cache;
  2. the cache folder (`cache_dir`, else $DLCV_CACHE_DIR, else ~/.cache/dlcv-compare);
  3. a download into the cache from the canonical mirrors, verified by md5 (if `download`).
Decoded arrays are kept as `<cache>/arrays/<task>-<key>.npz`, keyed on the source files' paths,
sizes and mtimes, so later runs skip the slow parsing/decoding.

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

from common.custom_data import is_custom, load_custom
from common.errors import DataError, UserError

TASK_NAMES = ("digits", "mnist", "cifar10")
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
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# Bump when decoding changes, so stale decoded-array caches are not reused.
_ARRAY_CACHE_VERSION = 1
_MAX_REASON_CHARS = 150

# pooch's downloader protocol: downloader(url, output_file, pooch) writes the file.
Downloader = Callable[[str, str, Any], None]


@dataclass(frozen=True)
class Dataset:
    """A task's train and test arrays, identical for both framework back-ends."""

    name: str  # "mnist" | "cifar10" | "digits"
    x_train: np.ndarray  # uint8, NHWC (N, H, W, C)  (MNIST/digits: C=1)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray  # uint8 NHWC
    y_test: np.ndarray  # int64
    class_names: tuple[str, ...]
    source: str  # human-readable: which files/dir it was read from


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


class _DownloadFailed(Exception):
    """Every mirror failed (offline, HTTP error...); the caller turns this into 'not found'."""


# ----------------------------------------------------------------------------- public API


def default_cache_dir() -> Path:
    """$DLCV_CACHE_DIR if set, else ~/.cache/dlcv-compare."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dlcv-compare"


def load_dataset(
    task: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
    image_size: int | None = None,
    image_dir: str | None = None,
) -> Dataset:
    """Load `task` as uint8 NHWC images and int64 labels (see the module docstring for where from).

    `downloader` is passed to `pooch.retrieve` (tests use it to fake the network).
    `image_size` and `image_dir` apply to your own data (folder:PATH, csv:FILE; common.custom_data).
    """
    if is_custom(task):
        return load_custom(task, image_size, image_dir)
    if task not in TASK_NAMES:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(TASK_NAMES)}, "
                        "folder:PATH, csv:FILE")
    if task == "digits":
        return _load_digits()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    user_dir = _user_data_dir(data_dir)
    if task == "mnist":
        source, class_names = _locate_mnist(user_dir, cache, download, downloader), MNIST_CLASSES
    else:
        source, class_names = _locate_cifar10(user_dir, cache, download, downloader), CIFAR10_CLASSES
    splits = _decode_with_array_cache(task, source, cache)
    _check_splits(splits, source.description, len(class_names))
    return Dataset(task, *splits, class_names=class_names, source=source.description)


# ----------------------------------------------------------------------------- digits


def _load_digits() -> Dataset:
    # sklearn is slow to import and only this task needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
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
        _write_atomically(stamp, lambda file: file.write(identity.encode()))
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
    train_files, y_train = _list_image_split(root / "train")
    test_files, y_test = _list_image_split(root / "test")

    def decode() -> _Splits:
        return _Splits(_decode_images(train_files), y_train, _decode_images(test_files), y_test)

    return _Source(f"CIFAR-10 image folders {root}/{{train,test}}/<class>",
                   tuple(train_files + test_files), decode)


def _list_image_split(split_dir: Path) -> tuple[list[str], np.ndarray]:
    """Image paths of one split in label order, then sorted file name, with their labels."""
    # Plain strings and os.scandir: pathlib costs seconds over 60,000 files.
    with os.scandir(split_dir) as entries:
        present = {e.name for e in entries if e.is_dir() and not e.name.startswith(".")}
    if present != set(CIFAR10_CLASSES):
        missing = [c for c in CIFAR10_CLASSES if c not in present]
        unknown = sorted(present - set(CIFAR10_CLASSES))
        raise DataError(
            f"{split_dir} must hold exactly one folder per CIFAR-10 class "
            f"({', '.join(CIFAR10_CLASSES)}); missing: {', '.join(missing) or 'none'}; "
            f"unknown: {', '.join(unknown) or 'none'}; rename or re-extract the folders")
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(CIFAR10_CLASSES):
        class_dir = os.path.join(split_dir, name)
        images = sorted(f for f in os.listdir(class_dir) if f.lower().endswith(IMAGE_SUFFIXES))
        if not images:
            raise DataError(f"{class_dir} holds no .jpg/.jpeg/.png images; re-extract the data")
        files += [os.path.join(class_dir, f) for f in images]
        labels += [label] * len(images)
    return files, np.array(labels, dtype=np.int64)


def _decode_images(paths: Sequence[str]) -> np.ndarray:
    # Single-threaded on purpose: for 32x32 images PIL's per-file Python overhead dominates and
    # holds the GIL, so threads measured slower; the result is cached as .npz anyway.
    size = CIFAR10_IMAGE_SIZE
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = _decode_image(path)
    return out


def _decode_image(path: str) -> np.ndarray:
    size = CIFAR10_IMAGE_SIZE
    try:
        # Reading the whole (tiny) file first is faster than letting PIL read it piecemeal.
        with open(path, "rb") as file:
            image = Image.open(io.BytesIO(file.read()), formats=("JPEG", "PNG"))
        if image.size != (size, size):
            raise DataError(f"{path} is {image.size[0]}x{image.size[1]} pixels, expected "
                            f"{size}x{size}; replace it with the original CIFAR-10 image")
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:  # PIL's "cannot decode" exceptions
        raise DataError(f"{path} is not a readable JPEG/PNG image ({_one_line(error)}); replace "
                        "it or re-extract the data") from error


# ----------------------------------------------------------------------------- decoded-array cache


def _decode_with_array_cache(task: str, source: _Source, cache: Path) -> _Splits:
    """Load the decoded arrays from `<cache>/arrays` if `source` is unchanged, else decode and save."""
    key = hashlib.sha256(json.dumps(
        [_ARRAY_CACHE_VERSION, task, [_file_identity(f) for f in source.files]]
    ).encode()).hexdigest()[:16]
    path = cache / "arrays" / f"{task}-{key}.npz"
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
        _write_atomically(path, lambda file: np.savez(file, **splits._asdict()))
    except OSError as error:
        warnings.warn(f"could not write the decoded-array cache {path} ({_one_line(error)}); "
                      "the data will be decoded again next time", stacklevel=3)


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Create `path` by calling `write` on a temporary file in the same folder, then os.replace,
    so readers (and concurrent runs) never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
