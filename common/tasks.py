"""The task registry: every task the CLI accepts, its defaults, and the loader of its data.

Built-in tasks are named ('digits', 'mnist', 'cifar10'); your own images are 'folder:PATH' or
'csv:FILE' and share the OWN_IMAGES defaults. Framework-free, like all of common/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# task_slug lives in common.data, which names its decoded-array cache files with it (data.py must
# not import this module: that would be a cycle); it is re-exported so callers need only this one.
from common.data import (Dataset, Downloader, load_cifar10, load_digits, load_mnist,
                         load_own_images, task_slug)
from common.errors import UserError

__all__ = ["OWN_IMAGES", "TASKS", "Task", "get_task", "is_own_images", "load_dataset", "task_slug"]


@dataclass(frozen=True)
class Task:
    """What a task is, and what it uses when the user does not say otherwise."""

    name: str  # 'digits' | 'mnist' | 'cifar10' | 'own images'
    description: str  # one line for --help
    input_shape: tuple[int, int, int] | None  # (H, W, C); None for own images (known once loaded)
    num_classes: int | None  # None for own images
    model: str  # default preset
    epochs: int
    batch_size: int
    val_size: int | None  # None: 10% of the training pool (own images), resolved once loaded
    optimizer: str
    loader: Callable[..., Dataset]  # loader(task, data_dir=, cache_dir=, download=, ...)


TASKS: dict[str, Task] = {
    "digits": Task(
        "digits", "scikit-learn's 8x8 handwritten digits (1,797 images, offline)",
        (8, 8, 1), 10, "digits_cnn", epochs=20, batch_size=32, val_size=300, optimizer="sgd",
        loader=load_digits),
    # Adam: the lab's MNIST CNN reaches ~97.7% in one epoch with it, ~96% with SGD(0.01, 0.9)
    "mnist": Task(
        "mnist", "MNIST 28x28 handwritten digits (70,000 images, downloaded once)",
        (28, 28, 1), 10, "mnist_cnn", epochs=5, batch_size=64, val_size=5000, optimizer="adam",
        loader=load_mnist),
    # the lab's best CIFAR-10 configuration: SGD, momentum 0.9, lr 0.01, batch 64, 20 epochs
    "cifar10": Task(
        "cifar10", "CIFAR-10 32x32 colour photos in 10 classes (60,000 images, downloaded once)",
        (32, 32, 3), 10, "cifar10_cnn", epochs=20, batch_size=64, val_size=5000, optimizer="sgd",
        loader=load_cifar10),
}

# Your own data (folder:PATH, csv:FILE): the CIFAR-10 CNN at 32x32 unless --image-size says
# otherwise; shape, classes and the 10% validation set are known only once the data is loaded.
OWN_IMAGES = Task(
    "own images", "your own images: folder:PATH (one sub-folder per class) or csv:FILE "
    "(filename,label rows; images in --image-dir)",
    None, None, "cifar10_cnn", epochs=10, batch_size=32, val_size=None, optimizer="sgd",
    loader=load_own_images)

_OWN_PREFIXES = ("folder:", "csv:")


def is_own_images(task: str) -> bool:
    """'folder:...' or 'csv:...' (with or without a path after the colon)."""
    return task.startswith(_OWN_PREFIXES)


def get_task(task: str) -> Task:
    """The registered task, or OWN_IMAGES for folder:PATH / csv:FILE with a non-empty path."""
    if task in TASKS:
        return TASKS[task]
    if is_own_images(task) and task.partition(":")[2]:
        return OWN_IMAGES
    raise UserError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}, folder:PATH, "
                    "csv:FILE")


def load_dataset(
    task: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    downloader: Downloader | None = None,
    image_size: int | None = None,
    image_dir: str | Path | None = None,
) -> Dataset:
    """Load `task` as uint8 NHWC images and int64 labels (common.data says from where).

    `downloader` is passed to `pooch.retrieve` (tests use it to fake the network); `image_size`
    and `image_dir` apply to own images only.
    """
    return get_task(task).loader(task, data_dir=data_dir, cache_dir=cache_dir, download=download,
                                 downloader=downloader, image_size=image_size, image_dir=image_dir)
