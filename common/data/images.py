"""Image files to arrays: class folders walked in a fixed order, and every supported Pillow mode
decoded to (H, W, 3) uint8 RGB by scaling, never by clipping."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from common.data.dataset import _one_line
from common.errors import DataError

# Image files of CIFAR-10 folders and own images, and the PIL formats they may hold: naming the
# formats stops PIL from trying every plugin on a file that is not an image.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
_IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")


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

