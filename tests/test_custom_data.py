"""Your own images: folder:PATH and csv:FILE tasks, loaders and an end-to-end comparison."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import records_of, run_compare, run_dirs
from PIL import Image

import common.data as data
from common.data import images
from common.errors import DataError, UserError
from common.tasks import load_dataset

COLORS = {"blue": (20, 40, 220), "red": (220, 30, 30)}


def _write_images(folder, per_class: int, rng, suffix=".png",
                  classes: tuple[str, ...] = tuple(COLORS)) -> list[tuple[str, str]]:
    """Noisy images whose colour gives the class; returns (file name, class) rows."""
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for name in classes:
        color = COLORS[name]
        for i in range(per_class):
            pixels = np.clip(np.array(color) + rng.integers(-30, 30, (20, 20, 3)), 0, 255)
            file = f"{name}_{i:03d}{suffix}"
            Image.fromarray(pixels.astype(np.uint8)).save(folder / file)
            rows.append((file, name))
    return rows


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    # Own images are cached like CIFAR-10: keep the developer's cache (and its env vars) out.
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    return tmp_path / "cache"


def _fail(*args, **kwargs):
    raise AssertionError("the images were decoded again instead of read from the cache")


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in COLORS:
        _write_images(tmp_path / "imgs" / name, 50, rng, classes=(name,))
    return tmp_path / "imgs"


def test_folder_task_holds_out_a_stratified_test_set(image_folder):
    ds = load_dataset(f"folder:{image_folder}", image_size=16)
    assert ds.name == f"folder:{image_folder}"
    assert ds.class_names == ("blue", "red")
    assert ds.x_train.shape[1:] == (16, 16, 3) and ds.x_train.dtype == np.uint8
    assert len(ds.x_train) + len(ds.x_test) == 100 and len(ds.x_test) == 20
    assert np.bincount(ds.y_test).tolist() == [10, 10]
    # blue images have a strong blue channel: the labels follow the folders
    assert ds.x_train[ds.y_train == 0][..., 2].mean() > ds.x_train[ds.y_train == 1][..., 2].mean()


def test_folder_task_uses_given_train_and_test(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 3)):
        for name in COLORS:
            _write_images(tmp_path / split / name, n, rng, classes=(name,))
    ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds.x_train) == 2 * 6 and len(ds.x_test) == 2 * 3
    assert ds.x_train.shape[1:] == (32, 32, 3)


def test_csv_task_with_header_and_errors(tmp_path):
    rows = _write_images(tmp_path / "images", 10, np.random.default_rng(2), suffix=".jpg")
    csv = tmp_path / "labels.csv"
    csv.write_text("id,label\n" + "".join(f"{f},{c}\n" for f, c in rows))
    ds = load_dataset(f"csv:{csv}", image_dir=str(tmp_path / "images"), image_size=12)
    assert ds.class_names == ("blue", "red") and len(ds.x_train) + len(ds.x_test) == 20
    with pytest.raises(UserError, match="--image-dir"):
        load_dataset(f"csv:{csv}")
    (tmp_path / "images" / rows[0][0]).unlink()
    with pytest.raises(DataError, match="not in"):
        load_dataset(f"csv:{csv}", image_dir=str(tmp_path / "images"))
    (tmp_path / "images" / rows[1][0]).write_bytes(b"not an image")
    (tmp_path / "images" / rows[0][0]).write_bytes(b"")
    with pytest.raises(DataError, match="not a readable image"):
        load_dataset(f"csv:{csv}", image_dir=str(tmp_path / "images"))


def test_folder_task_is_decoded_once_into_the_cache(image_folder, cache_in_tmp, monkeypatch):
    task = f"folder:{image_folder}"
    first = load_dataset(task, image_size=16)
    [npz] = (cache_in_tmp / "arrays").glob("folder-imgs-*.npz")
    monkeypatch.setattr(images, "_decode_image", _fail)
    second = load_dataset(task, image_size=16)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert second.class_names == first.class_names and second.source == first.source
    # Another image size is other arrays: decoded again, into a second file.
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(task, image_size=20)
    monkeypatch.undo()
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(cache_in_tmp))
    assert load_dataset(task, image_size=20).x_train.shape[1:] == (20, 20, 3)
    assert len(list((cache_in_tmp / "arrays").glob("folder-imgs-*.npz"))) == 2
    assert npz.is_file()


def test_explicit_cache_dir_and_changed_image_are_decoded_again(image_folder, tmp_path):
    task = f"folder:{image_folder}"
    first = load_dataset(task, cache_dir=tmp_path / "mine", image_size=8)
    assert len(list((tmp_path / "mine" / "arrays").glob("folder-imgs-*.npz"))) == 1
    # An image replaced by another of the same size: its mtime changes the key.
    victim = image_folder / "blue" / "blue_000.png"
    Image.new("RGB", (20, 20), (0, 255, 0)).save(victim)
    os.utime(victim, ns=(1, 1))
    second = load_dataset(task, cache_dir=tmp_path / "mine", image_size=8)
    assert not np.array_equal(np.concatenate([first.x_train, first.x_test]),
                              np.concatenate([second.x_train, second.x_test]))
    assert len(list((tmp_path / "mine" / "arrays").glob("folder-imgs-*.npz"))) == 2


def test_csv_relabelled_is_decoded_again(tmp_path, cache_in_tmp):
    rows = _write_images(tmp_path / "images", 5, np.random.default_rng(4))
    csv = tmp_path / "train.csv"
    csv.write_text("".join(f"{f},{c}\n" for f, c in rows))
    first = load_dataset(f"csv:{csv}", image_dir=str(tmp_path / "images"), image_size=8)
    assert len(list((cache_in_tmp / "arrays").glob("csv-train-*.npz"))) == 1
    flipped = {"blue": "red", "red": "blue"}
    csv.write_text("".join(f"{f},{flipped[c]}\n" for f, c in rows))
    second = load_dataset(f"csv:{csv}", image_dir=str(tmp_path / "images"), image_size=8)
    assert len(list((cache_in_tmp / "arrays").glob("csv-train-*.npz"))) == 2
    for ds, blue_label in ((first, 0), (second, 1)):  # classes sort as ("blue", "red")
        blue = ds.x_train[..., 2].mean(axis=(1, 2)) > 128
        np.testing.assert_array_equal(ds.y_train == blue_label, blue)


def test_csv_task_end_to_end(tmp_path):
    """A CSV task through compare.py, with its curves. It differs from the folder task only in
    how the data is found, and both frameworks train on what common.data prepared, so one
    framework shows it (a folder task in both: tests/test_inputs.py)."""
    rows = _write_images(tmp_path / "csvimgs", 30, np.random.default_rng(3), suffix=".jpg")
    csv = tmp_path / "train.csv"
    csv.write_text("".join(f"{f},{c}\n" for f, c in rows))
    out = tmp_path / "out"
    proc = run_compare("--task", f"csv:{csv}", "--image-dir", str(tmp_path / "csvimgs"),
                       "--image-size", "16", "--model", "digits_cnn", "--epochs", "10",
                       "--batch-size", "8", "--out", str(out), "--framework", "torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (record,) = records_of(run_dirs(out)[0])
    assert record.framework == "torch" and record.class_names == ["blue", "red"]
    assert record.test_accuracy >= 0.9, record.test_accuracy
    assert (run_dirs(out)[0] / "curves.png").exists()
