"""The built-in datasets: scikit-learn's digits, MNIST (IDX files) and CIFAR-10 (python batches,
image folders or their archives), found in the data folder, the cache, or downloaded."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.metadata
import json
import math
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from common.data.cache import (
    DATA_DIR_ENV,
    Downloader,
    _cache_dir,
    _file_identity,
    _load_cached,
    _retrieve,
    _user_data_dir,
)
from common.data.dataset import (
    Dataset,
    _corrupt,
    _DownloadFailed,
    _not_found,
    _one_line,
    _Source,
    _Splits,
)
from common.data.images import _decode_images, _labels, _walk_class_folders
from common.errors import DataError
from common.files import write_text

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


# Every loader takes the task string and the same keyword options (common.tasks.load_dataset
# passes them all); each ignores the options that do not apply to it.


def load_digits(task: str = "digits", *, cache_dir: str | Path | None = None,
                **_options: Any) -> Dataset:
    """scikit-learn's 8x8 digits with a stratified, seeded 20% test split (offline). The split
    arrays go to the decoded-array cache, keyed on scikit-learn's version: importing
    scikit-learn costs about a second of every framework process's start (measured), and a
    PyTorch process needs it for nothing else."""
    description = (f"sklearn.datasets.load_digits, stratified {DIGITS_TEST_FRACTION:.0%} test "
                   f"split (seed {DIGITS_SPLIT_SEED})")
    key = ("scikit-learn", importlib.metadata.version("scikit-learn"), DIGITS_SPLIT_SEED,
           DIGITS_TEST_FRACTION, DIGITS_MAX_VALUE)
    source = _Source(description, (), _decode_digits, key)
    return _load_cached("digits", source, _cache_dir(cache_dir), MNIST_CLASSES)


def _decode_digits() -> _Splits:
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
    return _Splits(x_train, y_train, x_test, y_test)


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
    except Exception as error:
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

