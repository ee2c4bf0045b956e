"""Tests for common/data/ on small synthetic files in each canonical format (no network)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import common.data as data
from common.data import builtin, images
from common.data import CIFAR10_CLASSES, Dataset
from common.errors import DataError, UserError
from common.tasks import OWN_IMAGES, TASKS, get_task, is_own_images, load_dataset, task_slug

MNIST_NAMES = tuple(data.MNIST_GZ_MD5)


# ----------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, content: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def make_mnist(folder: Path, gz: bool = True, n_train: int = 6, n_test: int = 4,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four IDX files into `folder`; return the arrays they hold."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        magic = data.IDX_IMAGES_MAGIC if array.ndim == 3 else data.IDX_LABELS_MAGIC
        write_file(folder / name, idx_bytes(array, magic), gz=gz)
    return arrays


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray, protocol: int = 2) -> bytes:
    """A CIFAR-10 python batch: rows are planar (all R, then G, then B), like the real files."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {b"batch_label": b"synthetic", b"labels": [int(y) for y in labels],
             b"data": rows, b"filenames": [b"x.png"] * len(images)}
    return pickle.dumps(batch, protocol=protocol)


def make_cifar_batches(folder: Path, per_batch: int = 3, seed: int = 0,
                       protocol: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Write data_batch_1..5 and test_batch into `folder`; return (x_train, y_train, x_test, y_test)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in (*data.CIFAR10_TRAIN_BATCHES, data.CIFAR10_TEST_BATCH):
        x = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch)
        (folder / name).write_bytes(cifar_batch_bytes(x, y, protocol))
        xs.append(x)
        ys.append(y)
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, protocol=2))
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1]), xs[-1], ys[-1]


def smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A 32x32 RGB gradient: JPEG keeps it close, unlike noise."""
    ramp = np.linspace(0, 1, 32)
    base, slope = rng.integers(30, 150, 3), rng.integers(0, 100, 3)
    img = base + slope * (ramp[:, None, None] + ramp[None, :, None]) / 2
    return img.round().astype(np.uint8)


def make_image_folder(root: Path, ext: str = ".png", per_class: int = 2,
                      seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write root/{train,test}/<class>/NNNN<ext>; return {split: (images, labels)} in load order."""
    rng = np.random.default_rng(seed)
    expected = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for label, name in enumerate(CIFAR10_CLASSES):
            (root / split / name).mkdir(parents=True)
            # Written in reverse so that only sorting by name gives the expected order.
            images = [smooth_image(rng) for _ in range(per_class)]
            for i in reversed(range(per_class)):
                Image.fromarray(images[i]).save(root / split / name / f"{i:04d}{ext}", quality=95)
            xs += images
            ys += [label] * per_class
        expected[split] = (np.stack(xs), np.array(ys))
    return expected


def make_tar_gz(archive: Path, folder: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_downloader(files: dict[str, bytes], calls: list[str] | None = None):
    """A pooch downloader serving `files` by URL; other URLs fail like a network error."""
    def download(url: str, output_file: str, pooch: object) -> None:
        if calls is not None:
            calls.append(url)
        if url not in files:
            raise OSError(f"cannot reach {url}")
        Path(output_file).write_bytes(files[url])
    return download


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own DLCV_DATA_DIR must not leak into the tests.
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(data.CACHE_DIR_ENV, raising=False)


# ----------------------------------------------------------------------------- general


@pytest.mark.parametrize("task", ["imagenet", "folder:", "csv:", "Digits"])
def test_unknown_task_lists_choices(tmp_path: Path, task: str) -> None:
    with pytest.raises(UserError) as error:
        load_dataset(task, cache_dir=tmp_path)
    message = assert_one_line(error)
    assert all(name in message for name in ("digits", "mnist", "cifar10", "folder:PATH",
                                            "csv:FILE"))


def test_registry_order_and_own_images() -> None:
    assert list(TASKS) == ["digits", "mnist", "cifar10"]
    assert all(get_task(name) is TASKS[name] for name in TASKS)
    assert get_task("folder:pets") is OWN_IMAGES and get_task("csv:a.csv") is OWN_IMAGES
    assert OWN_IMAGES.input_shape is None and OWN_IMAGES.val_size is None
    assert is_own_images("folder:x") and is_own_images("csv:") and not is_own_images("mnist")
    assert TASKS["mnist"].optimizer == "adam" and TASKS["cifar10"].batch_size == 64


@pytest.mark.parametrize("task, slug", [
    ("digits", "digits"), ("cifar10", "cifar10"),
    ("folder:/a/b/pets", "folder-pets"), ("folder:/a/b/pets/", "folder-pets"),
    ("csv:/x/train.csv", "csv-train"), ("folder:/a/my pets!", "folder-my-pets-"),
])
def test_task_slug(task: str, slug: str) -> None:
    assert task_slug(task) == slug


@pytest.mark.parametrize("name", list(TASKS))
def test_registered_shape_and_classes_match_the_loader(tmp_path: Path, name: str) -> None:
    make_mnist(tmp_path / "data")
    make_cifar_batches(tmp_path / "data")
    ds = load_dataset(name, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                      download=False)
    task = TASKS[name]
    assert ds.name == name
    assert ds.x_train.shape[1:] == task.input_shape == ds.x_test.shape[1:]
    assert len(ds.class_names) == task.num_classes


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.CACHE_DIR_ENV, raising=False)  # conftest sets one for the session
    assert data.default_cache_dir() == Path.home() / ".cache" / "dlcv-compare"
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "c"))
    assert data.default_cache_dir() == tmp_path / "c"


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tmp_path / "nope", cache_dir=tmp_path / "cache")
    assert str(tmp_path / "nope") in assert_one_line(error)


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_split_and_determinism(tmp_path: Path) -> None:
    first = load_dataset("digits", cache_dir=tmp_path)
    assert first.x_train.shape == (1437, 8, 8, 1) and first.x_test.shape == (360, 8, 8, 1)
    assert first.x_train.dtype == np.uint8 and first.y_train.dtype == np.int64
    assert first.x_train.max() == 255 and first.x_train.min() == 0
    assert set(np.unique(first.x_train)) <= {round(v * 255 / 16) for v in range(17)}
    assert first.class_names == tuple("0123456789")
    # Stratified: every class gets ~20% of its 174..183 samples.
    assert np.all(np.abs(np.bincount(first.y_test) - 36) <= 1)
    # decoded once (scikit-learn is imported by that first load only), then read from the cache
    assert len(list((tmp_path / "arrays").glob("digits-*.npz"))) == 1
    second = load_dataset("digits", cache_dir=tmp_path)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


# ----------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", [".", "mnist", "MNIST/raw"])
def test_mnist_loads_idx_files(tmp_path: Path, gz: bool, layout: str) -> None:
    expected = make_mnist(tmp_path / "data" / layout, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                      download=False)
    assert isinstance(ds, Dataset) and ds.name == "mnist"
    assert ds.x_train.shape == (6, 28, 28, 1) and ds.x_test.shape == (4, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[..., 0], expected["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_train, expected["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.x_test[..., 0], expected["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, expected["t10k-labels-idx1-ubyte"])
    assert ds.class_names == tuple("0123456789")
    assert str((tmp_path / "data" / layout).resolve()) in ds.source


def test_mnist_uses_data_dir_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = make_mnist(tmp_path / "env", seed=1)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "env"))
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(ds.y_train, expected["train-labels-idx1-ubyte"])

    monkeypatch.delenv(data.DATA_DIR_ENV)
    cached = make_mnist(tmp_path / "cache" / "mnist", seed=2)
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache", download=False)
    np.testing.assert_array_equal(ds.y_train, cached["train-labels-idx1-ubyte"])


def _truncate_gz(folder: Path) -> Path:
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    return path


def _wrong_magic(folder: Path) -> Path:
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8), data.IDX_LABELS_MAGIC + 7))
    return path


def _short_payload(folder: Path) -> Path:
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(6, np.uint8), data.IDX_LABELS_MAGIC)[:-1])
    return path


def _garbage_gz(folder: Path) -> Path:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    return path


@pytest.mark.parametrize("damage", [_truncate_gz, _wrong_magic, _short_payload, _garbage_gz])
def test_mnist_corrupt_files_name_the_file(tmp_path: Path, damage) -> None:
    make_mnist(tmp_path / "data", gz=True)
    bad = damage(tmp_path / "data")  # a raw file is preferred over its .gz twin
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                     download=False)
    message = assert_one_line(error)
    assert str(bad) in message and "truncated or corrupt" in message
    assert "re-download" in message


def test_mnist_label_count_must_match_images(tmp_path: Path) -> None:
    make_mnist(tmp_path / "data", gz=False)
    write_file(tmp_path / "data" / "train-labels-idx1-ubyte",
               idx_bytes(np.zeros(5, np.uint8), data.IDX_LABELS_MAGIC))
    with pytest.raises(DataError, match="6 training images but 5 labels"):
        load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                     download=False)


def test_mnist_not_found_names_the_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    make_mnist(tmp_path / "data" / "mnist")
    (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                     download=False)
    message = assert_one_line(error)
    for path in (tmp_path / "data", tmp_path / "data" / "MNIST" / "raw",
                 tmp_path / "cache" / "mnist"):
        assert str(path) in message
    assert "lacks t10k-labels-idx1-ubyte" in message
    assert "--data-dir" in message and data.DATA_DIR_ENV in message


def test_mnist_download_verifies_and_falls_back_to_second_mirror(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = make_mnist(tmp_path / "upstream", gz=True)
    served = {data.MNIST_MIRRORS[1] + f"{n}.gz": (tmp_path / "upstream" / f"{n}.gz").read_bytes()
              for n in MNIST_NAMES}
    monkeypatch.setattr(builtin, "MNIST_GZ_MD5",
                        {n: md5(tmp_path / "upstream" / f"{n}.gz") for n in MNIST_NAMES})
    calls: list[str] = []
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache", downloader=fake_downloader(served, calls))
    np.testing.assert_array_equal(ds.x_test[..., 0], expected["t10k-images-idx3-ubyte"])
    assert calls[0].startswith(data.MNIST_MIRRORS[0]) and calls[1].startswith(data.MNIST_MIRRORS[1])
    assert all((tmp_path / "cache" / "mnist" / f"{n}.gz").is_file() for n in MNIST_NAMES)
    assert str((tmp_path / "cache" / "mnist").resolve()) in ds.source


def test_mnist_download_checksum_mismatch(tmp_path: Path) -> None:
    served = {m + f"{n}.gz": b"definitely not MNIST" for m in data.MNIST_MIRRORS
              for n in MNIST_NAMES}
    with pytest.raises(DataError) as error:
        load_dataset("mnist", cache_dir=tmp_path / "cache", downloader=fake_downloader(served))
    message = assert_one_line(error)
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in message
    assert not (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_mnist_offline_download_fails_cleanly(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(DataError) as error:
        load_dataset("mnist", cache_dir=tmp_path / "cache", downloader=fake_downloader({}, calls))
    message = assert_one_line(error)
    assert len(calls) == len(data.MNIST_MIRRORS)  # each mirror tried once, then give up
    assert "not found" in message and str(tmp_path / "cache" / "mnist") in message
    assert "download failed" in message and "--data-dir" in message


# ----------------------------------------------------------------------------- CIFAR-10 batches


@pytest.mark.parametrize("subfolder", [".", "cifar-10-batches-py", "cifar10"])
def test_cifar10_batches(tmp_path: Path, subfolder: str) -> None:
    x_train, y_train, x_test, y_test = make_cifar_batches(tmp_path / "data" / subfolder)
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                      download=False)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.x_train.flags.c_contiguous and ds.x_test.flags.c_contiguous
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.class_names == CIFAR10_CLASSES


def test_cifar10_batch_rows_are_planar_chw(tmp_path: Path) -> None:
    make_cifar_batches(tmp_path / "data")
    row = np.zeros((1, 3072), np.uint8)
    row[0, 2 * 1024 + 5 * 32 + 7] = 201  # blue plane, row 5, column 7
    row[0, 0 * 1024 + 31 * 32 + 0] = 17  # red plane, row 31, column 0
    batch = {b"data": row, b"labels": [4]}
    (tmp_path / "data" / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                      download=False)
    assert ds.x_test[0, 5, 7, 2] == 201 and ds.x_test[0, 31, 0, 0] == 17
    assert ds.x_test.sum() == 201 + 17 and ds.y_test.tolist() == [4]


@pytest.mark.parametrize("protocol, numpy1_names", [(2, True), (pickle.HIGHEST_PROTOCOL, False)])
def test_cifar10_batches_from_old_and_new_numpy_pickles(tmp_path: Path, protocol: int,
                                                        numpy1_names: bool) -> None:
    x_train, *_ = make_cifar_batches(tmp_path / "data", protocol=protocol)
    if numpy1_names:
        # The real files were pickled by Python 2 with numpy 1.x, naming numpy.core.multiarray
        # (protocol 2 spells globals as newline-terminated text, so this edit keeps it valid).
        first = tmp_path / "data" / "data_batch_1"
        first.write_bytes(first.read_bytes().replace(b"numpy._core", b"numpy.core"))
        assert b"numpy.core.multiarray\n_reconstruct" in first.read_bytes()
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                      download=False)
    np.testing.assert_array_equal(ds.x_train, x_train)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("content", [
    b"this is not a pickle",
    pickle.dumps({b"labels": [1]}, protocol=2),                                       # no data
    pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, protocol=2),  # size
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, protocol=2),    # count
    pickle.dumps({b"data": _Evil(), b"labels": [1]}, protocol=2),                     # code
], ids=["garbage", "no-data-key", "wrong-size", "label-count", "arbitrary-code"])
def test_cifar10_bad_batch_names_the_file(tmp_path: Path, content: bytes,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_cifar_batches(tmp_path / "data")
    (tmp_path / "data" / "data_batch_3").write_bytes(content)
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)
    message = assert_one_line(error)
    assert str((tmp_path / "data" / "data_batch_3").resolve()) in message
    assert "truncated or corrupt" in message
    assert not (tmp_path / "pwned.txt").exists()


def test_cifar10_truncated_batch(tmp_path: Path) -> None:
    make_cifar_batches(tmp_path / "data")
    path = tmp_path / "data" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="test_batch is truncated or corrupt"):
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)


def test_cifar10_missing_batch(tmp_path: Path) -> None:
    make_cifar_batches(tmp_path / "data")
    (tmp_path / "data" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="lacks data_batch_4"):
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)


# ----------------------------------------------------------------------------- CIFAR-10 images


def test_cifar10_png_folder_is_exact_and_in_canonical_order(tmp_path: Path) -> None:
    expected = make_image_folder(tmp_path / "data" / "cifar10-jpg", ".png")
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                      download=False)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (20, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, expected["train"][0])
    np.testing.assert_array_equal(ds.y_train, expected["train"][1])
    np.testing.assert_array_equal(ds.x_test, expected["test"][0])
    assert ds.y_train.tolist() == [label for label in range(10) for _ in range(2)]


def test_cifar10_jpeg_folder_within_tolerance(tmp_path: Path) -> None:
    expected = make_image_folder(tmp_path / "data", ".jpg")
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                      download=False)
    diff = np.abs(ds.x_train.astype(int) - expected["train"][0].astype(int))
    assert diff.mean() < 2 and diff.max() < 16
    np.testing.assert_array_equal(ds.y_test, expected["test"][1])


def test_cifar10_grayscale_image_becomes_rgb(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data", ".png", per_class=1)
    gray = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 256
    Image.fromarray(gray.astype(np.uint8), "L").save(tmp_path / "data/test/cat/0000.png")
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                      download=False)
    cat = CIFAR10_CLASSES.index("cat")
    np.testing.assert_array_equal(ds.x_test[cat], np.repeat(gray[..., None], 3, axis=2))


@pytest.mark.parametrize("change, words", [
    (lambda root: (root / "train" / "truck").rename(root / "train" / "lorry"),
     ["missing: truck", "unknown: lorry"]),
    (lambda root: (root / "test" / "bird").rename(root / "x"), ["missing: bird"]),
])
def test_cifar10_class_folders_must_be_canonical(tmp_path: Path, change, words) -> None:
    make_image_folder(tmp_path / "data", ".png", per_class=1)
    change(tmp_path / "data")
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)
    message = assert_one_line(error)
    assert ", ".join(CIFAR10_CLASSES) in message
    assert all(word in message for word in words)


@pytest.mark.parametrize("content, words", [
    (b"\xff\xd8\xff\xe0 not a jpeg at all", "not a readable"),
    (None, "is 16x32 pixels, expected 32x32"),
])
def test_cifar10_bad_image_names_the_file(tmp_path: Path, content: bytes | None,
                                          words: str) -> None:
    make_image_folder(tmp_path / "data", ".jpg", per_class=1)
    bad = tmp_path / "data" / "train" / "frog" / "0000.jpg"
    if content is None:
        Image.new("RGB", (16, 32)).save(bad)
    else:
        bad.write_bytes(content)
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)
    message = assert_one_line(error)
    assert str(bad.resolve()) in message and words in message


def test_cifar10_truncated_jpeg(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "data", ".jpg", per_class=1)
    bad = tmp_path / "data" / "test" / "ship" / "0000.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=r"ship/0000\.jpg is not a readable"):
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)


# ----------------------------------------------------------------------------- CIFAR-10 archives


def test_cifar10_archive_in_data_dir_is_extracted_once(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    expected = make_image_folder(tmp_path / "src" / "cifar10-jpg", ".png", per_class=1)
    (tmp_path / "data").mkdir()
    archive = make_tar_gz(tmp_path / "data" / "cifar10-jpg.tar.gz", tmp_path / "src" / "cifar10-jpg")
    cache = tmp_path / "cache"
    ds = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=cache, download=False)
    np.testing.assert_array_equal(ds.x_test, expected["test"][0])
    assert (cache / "cifar10" / "cifar10-jpg" / "train" / "dog").is_dir()
    assert str(archive) in ds.source

    def no_tar(*args, **kwargs):
        raise AssertionError("extracted again")

    monkeypatch.setattr(tarfile, "open", no_tar)
    again = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=cache, download=False)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    # Without --data-dir the extracted copy in the cache is found too.
    cached = load_dataset("cifar10", cache_dir=cache, download=False)
    np.testing.assert_array_equal(cached.y_train, ds.y_train)


def test_cifar10_truncated_archive(tmp_path: Path) -> None:
    make_cifar_batches(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "data").mkdir()
    archive = make_tar_gz(tmp_path / "data" / "cifar-10-python.tar.gz",
                          tmp_path / "src" / "cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:-300])
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "c",
                     download=False)
    message = assert_one_line(error)
    assert str(archive) in message and "corrupt" in message


def test_cifar10_download_and_extract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x_train, *_ = make_cifar_batches(tmp_path / "upstream" / "cifar-10-batches-py")
    archive = make_tar_gz(tmp_path / "cifar-10-python.tar.gz",
                          tmp_path / "upstream" / "cifar-10-batches-py")
    monkeypatch.setattr(builtin, "CIFAR10_MD5", md5(archive))
    served = {data.CIFAR10_URL: archive.read_bytes()}
    ds = load_dataset("cifar10", cache_dir=tmp_path / "cache", downloader=fake_downloader(served))
    np.testing.assert_array_equal(ds.x_train, x_train)
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


def test_cifar10_download_checksum_mismatch(tmp_path: Path) -> None:
    served = {data.CIFAR10_URL: b"truncated download"}
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", cache_dir=tmp_path / "cache", downloader=fake_downloader(served))
    assert "checksum mismatch for cifar-10-python.tar.gz" in assert_one_line(error)


def test_cifar10_not_found_names_the_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                     download=False)
    message = assert_one_line(error)
    for path in (tmp_path / "data", tmp_path / "data" / "cifar-10-batches-py",
                 tmp_path / "data" / "cifar10-jpg", tmp_path / "cache" / "cifar10"):
        assert str(path) in message
    assert "downloading is off" in message and "--data-dir" in message


# ----------------------------------------------------------------------------- decoded-array cache


def _fail(*args, **kwargs):
    raise AssertionError("the source was parsed again instead of read from the cache")


def test_mnist_second_load_reads_the_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_mnist(tmp_path / "data")
    first = load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    [npz] = (tmp_path / "cache" / "arrays").glob("mnist-*.npz")
    assert list(np.load(npz).keys()) == ["x_train", "y_train", "x_test", "y_test"]
    monkeypatch.setattr(builtin, "_read_idx", _fail)
    second = load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.source == first.source
    assert not list((tmp_path / "cache" / "arrays").glob("*.tmp"))


def test_cifar10_images_second_load_reads_the_npz(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    make_image_folder(tmp_path / "data", ".png", per_class=1)
    first = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "arrays").glob("cifar10-*.npz"))) == 1
    monkeypatch.setattr(images, "_decode_image", _fail)
    second = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.x_train, first.x_train)


def test_changed_source_is_decoded_again(tmp_path: Path) -> None:
    make_mnist(tmp_path / "data", seed=1)
    load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    new = make_mnist(tmp_path / "data", seed=2, n_train=7)
    ds = load_dataset("mnist", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.x_train[..., 0], new["train-images-idx3-ubyte"])
    assert len(list((tmp_path / "cache" / "arrays").glob("mnist-*.npz"))) == 2


def test_unreadable_npz_is_ignored_and_rewritten(tmp_path: Path) -> None:
    make_cifar_batches(tmp_path / "data")
    first = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    [npz] = (tmp_path / "cache" / "arrays").glob("cifar10-*.npz")
    npz.write_bytes(npz.read_bytes()[:1000])
    second = load_dataset("cifar10", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.x_train, first.x_train)
    with np.load(npz) as arrays:  # rewritten whole
        np.testing.assert_array_equal(arrays["x_train"], first.x_train)
