"""Your own images: `--task folder:PATH` and `--task csv:FILE --image-dir DIR`.

- folder:PATH holds one sub-folder per class (`PATH/<class>/*.jpg|png`), or `PATH/train/<class>/`
  and `PATH/test/<class>/`;
- csv:FILE lists `filename,label` rows (a header row is detected), with the images in --image-dir.
Images are converted to RGB and resized to --image-size (square). Without a given test split, a
seeded, stratified 20% of the images is held out as the test set. Classes are sorted by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.errors import DataError, UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
TEST_FRACTION = 0.2
SPLIT_SEED = 0
DEFAULT_IMAGE_SIZE = 32


def is_custom(task: str) -> bool:
    return task.startswith(("folder:", "csv:"))


def _decode(paths: list[str], size: int) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                out[i] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        except (OSError, ValueError, SyntaxError) as error:
            raise DataError(f"{path} is not a readable image ({type(error).__name__}); replace "
                            "or remove it") from None
    return out


def _class_folder(root: Path) -> tuple[list[str], list[str]]:
    """(paths, class names per path) of root/<class>/<image>."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for name in classes:
        files = sorted(f for f in os.listdir(root / name) if f.lower().endswith(IMAGE_SUFFIXES))
        paths += [str(root / name / f) for f in files]
        labels += [name] * len(files)
    if not paths:
        raise DataError(f"{root} holds no images in class sub-folders (<class>/*.jpg|png); "
                        "give a folder with one sub-folder per class")
    return paths, labels


def _read_csv(csv_file: Path, image_dir: Path) -> tuple[list[str], list[str]]:
    import pandas as pd  # noqa: PLC0415

    try:
        table = pd.read_csv(csv_file, header=None, dtype=str, skipinitialspace=True)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {csv_file} as CSV ({type(error).__name__}); it must hold "
                        "rows of filename,label") from None
    if table.shape[1] < 2:
        raise DataError(f"{csv_file} needs two columns, filename and label")
    first = str(table.iat[0, 0])
    if not (image_dir / first).exists():  # a header row such as "id,label"
        table = table.iloc[1:]
    names, labels = table.iloc[:, 0].tolist(), table.iloc[:, 1].tolist()
    missing = [n for n in names if not (image_dir / n).is_file()]
    if missing:
        raise DataError(f"{len(missing)} images listed in {csv_file} are not in {image_dir} "
                        f"(first: {missing[0]}); check --image-dir")
    return [str(image_dir / n) for n in names], labels


def load_custom(task: str, image_size: int | None = None, image_dir: str | None = None):
    """Load a folder: or csv: task as a common.data.Dataset."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    from common.data import Dataset  # noqa: PLC0415  (avoids an import cycle)

    size = image_size or DEFAULT_IMAGE_SIZE
    if size < 8:
        raise UserError("--image-size must be at least 8")
    kind, _, where = task.partition(":")
    path = Path(where).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; --task {kind}:PATH needs an existing "
                        f"{'folder' if kind == 'folder' else 'CSV file'}")
    test: tuple[list[str], list[str]] | None = None
    if kind == "folder":
        if (path / "train").is_dir() and (path / "test").is_dir():
            train, test = _class_folder(path / "train"), _class_folder(path / "test")
        else:
            train = _class_folder(path)
    else:
        if image_dir is None:
            raise UserError("--task csv:FILE needs --image-dir DIR, the folder of its images")
        train = _read_csv(path, Path(image_dir).expanduser())
    classes = sorted(set(train[1]) | (set(test[1]) if test else set()))
    if len(classes) < 2:
        raise DataError(f"{path} has {len(classes)} class; a classifier needs at least two")
    index = {c: i for i, c in enumerate(classes)}
    if test is None:
        paths, labels = train
        try:
            train_p, test_p, train_l, test_l = train_test_split(
                paths, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
        except ValueError:  # a class too small to stratify
            train_p, test_p, train_l, test_l = train_test_split(
                paths, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
        train, test = (train_p, train_l), (test_p, test_l)
    return Dataset(
        name=task,
        x_train=_decode(train[0], size), y_train=np.array([index[c] for c in train[1]], np.int64),
        x_test=_decode(test[0], size), y_test=np.array([index[c] for c in test[1]], np.int64),
        class_names=tuple(classes), source=f"{path} ({size}x{size} RGB)",
    )
