"""The data stage of dlcv-compare: loading digits, MNIST, CIFAR-10 and your own images as uint8 NHWC.

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

Modules: `dataset` (the Dataset type, split checks, error helpers), `cache` (data and cache
folders, downloads, the decoded-array cache), `images` (image files to uint8 RGB), `builtin`
(digits, MNIST, CIFAR-10), `own` (folder:PATH and csv:FILE), and `prepare` (a worker's input
preparation: split, standardisation, finite check; imported on its own, not from here).
Importing this package imports numpy and Pillow only: scikit-learn, pandas and pooch are imported
inside the functions that need them.
"""

from __future__ import annotations

from common.data.builtin import (
                                 CIFAR10_CLASSES,
                                 CIFAR10_MD5,
                                 CIFAR10_TEST_BATCH,
                                 CIFAR10_TRAIN_BATCHES,
                                 CIFAR10_URL,
                                 IDX_IMAGES_MAGIC,
                                 IDX_LABELS_MAGIC,
                                 MNIST_CLASSES,
                                 MNIST_GZ_MD5,
                                 MNIST_MIRRORS,
                                 load_cifar10,
                                 load_digits,
                                 load_mnist,
)
from common.data.cache import CACHE_DIR_ENV, DATA_DIR_ENV, Downloader, default_cache_dir
from common.data.dataset import OWN_KINDS, Dataset, task_slug
from common.data.images import IMAGE_SUFFIXES, to_rgb8
from common.data.own import load_own_images

__all__ = [
    "CACHE_DIR_ENV", "CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_TEST_BATCH",
    "CIFAR10_TRAIN_BATCHES", "CIFAR10_URL", "DATA_DIR_ENV", "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC", "IMAGE_SUFFIXES", "MNIST_CLASSES", "MNIST_GZ_MD5", "MNIST_MIRRORS",
    "OWN_KINDS", "Dataset", "Downloader", "default_cache_dir", "load_cifar10", "load_digits",
    "load_mnist", "load_own_images", "task_slug", "to_rgb8",
]
