"""Your own images: `folder:PATH` (one sub-folder per class, optional train/ and test/) and
`csv:FILE` (rows of filename,label; the images in --image-dir), converted to RGB, resized to a
square size, with a seeded, stratified 20% test split when none is given."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from common.data.cache import _cache_dir, _load_cached
from common.data.dataset import OWN_KINDS, Dataset, _one_line, _Source, _Splits
from common.data.images import _decode_images, _labels, _walk_class_folders
from common.errors import DataError, UserError

OWN_IMAGE_SIZE = 32  # pixels, square, when no image_size is given: the CIFAR-10 CNN's input
OWN_MIN_IMAGE_SIZE = 8
OWN_TEST_FRACTION = 0.2
OWN_SPLIT_SEED = 0


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

