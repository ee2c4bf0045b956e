"""Your own images: folder:PATH and csv:FILE tasks, loaders and an end-to-end comparison."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import records_of, run_compare, run_dirs
from PIL import Image

from common.data import load_dataset
from common.errors import DataError, UserError

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


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in COLORS:
        _write_images(tmp_path / "imgs" / name, 50, rng, classes=(name,))
    return tmp_path / "imgs"


def test_folder_task_holds_out_a_stratified_test_set(image_folder):
    ds = load_dataset(f"folder:{image_folder}", image_size=16)
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


def test_folder_and_csv_tasks_end_to_end(tmp_path, image_folder):
    rows = _write_images(tmp_path / "csvimgs", 30, np.random.default_rng(3), suffix=".jpg")
    csv = tmp_path / "train.csv"
    csv.write_text("".join(f"{f},{c}\n" for f, c in rows))
    for task, extra in ((f"folder:{image_folder}", []),
                        (f"csv:{csv}", ["--image-dir", str(tmp_path / "csvimgs")])):
        out = tmp_path / task.split(":")[0]
        proc = run_compare("--task", task, *extra, "--image-size", "16", "--model", "digits_cnn",
                           "--epochs", "10", "--batch-size", "8", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        records = records_of(run_dirs(out)[0])
        assert {r["framework"] for r in records} == {"keras", "torch"}
        for r in records:
            assert r["class_names"] == ["blue", "red"]
            assert r["test_accuracy"] >= 0.9, (task, r["framework"], r["test_accuracy"])
        assert (run_dirs(out)[0] / "curves.png").exists()
