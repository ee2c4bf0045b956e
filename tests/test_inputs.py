"""Real inputs never produce a wrong table: constant channels, every Pillow pixel mode, labels as
text, and grid folds that miss a class. Each kind pins the right value, not only a message."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import records_of, run_compare, run_dirs
from PIL import Image

import common.data as data
from common.data import images
from common.errors import DataError
from common.tasks import load_dataset
from common.data.prepare import CONSTANT_CHANNEL_STD, check_finite, standardisation
from compare import check_cv_classes


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)


def squares(folder, colours: dict[str, tuple[int, int, int]], per_class: int = 20):
    """16x16 RGB PNGs: a square of the class colour on black, at a random place."""
    rng = np.random.default_rng(0)
    for name, colour in colours.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.zeros((16, 16, 3), np.uint8)
            r, c = rng.integers(0, 8, 2)
            pixels[r:r + 8, c:c + 8] = colour
            Image.fromarray(pixels).save(folder / name / f"{i:02d}.png")
    return folder


# ----------------------------------------------------------------------------- 1. statistics


def test_a_constant_channel_is_centred_not_divided_by_zero():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10, 4, 4, 3)).astype(np.uint8)
    x[..., 2] = 0  # blue: constant
    x[..., 1] = 0
    x[0, 0, 0, 1] = 1  # green: one grey level off in one pixel, std far below half a level
    mean, std, constant = standardisation(x)
    assert constant == (1, 2)
    assert std[1] == std[2] == 1.0
    assert std[0] == pytest.approx(x[..., 0].std() / 255)
    assert CONSTANT_CHANNEL_STD == pytest.approx(0.5 / 255)


def test_non_finite_inputs_are_one_error_naming_the_split():
    good = np.zeros((2, 2, 2, 1), np.float32)
    bad = good.copy()
    bad[1, 0, 0, 0] = np.nan
    check_finite({"training": good}, "t")  # no error
    with pytest.raises(Exception, match=r"1 non-finite values in the prepared validation inputs "
                                        r"\(first in image 1\)"):
        check_finite({"training": good, "validation": bad}, "t")


def test_a_channel_zero_everywhere_trains_to_the_right_answer(tmp_path):
    """A folder task end to end in both frameworks, with its curves: red and green squares,
    blue 0 everywhere, learnt by both (no NaN input)."""
    folder = squares(tmp_path / "rg", {"red": (255, 0, 0), "green": (0, 255, 0)}, per_class=50)
    out = tmp_path / "out"
    proc = run_compare("--task", f"folder:{folder}", "--image-size", "16", "--framework", "both",
                       "--epochs", "3", "--batch-size", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = records_of(run_dirs(out)[0])
    assert {r.framework for r in records} == {"keras", "torch"}
    assert (run_dirs(out)[0] / "curves.png").exists()
    for r in records:
        assert r.class_names == ["green", "red"] and not r.diverged
        assert r.test_accuracy >= 0.9, (r.framework, r.test_accuracy)
        assert r.input_standardisation["constant_channels"] == [2]
        assert r.input_standardisation["std"][2] == 1.0


# ----------------------------------------------------------------------------- 2. pixel modes


def _png_16bit_rgb(size: int, value: int) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), every sample `value`."""
    row = b"\x00" + struct.pack(">" + "H" * 3 * size, *([value] * 3 * size))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", size, size, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b""))


GREY = 200  # 8-bit value of the test images; 16-bit images use GREY * 257


def _image(mode: str) -> tuple[bytes, str]:
    """An 8x8 image of Pillow mode `mode`, as file bytes and suffix, whose every pixel decodes to
    GREY in each RGB channel (alpha, palette and colour-space modes hold that grey)."""
    if mode == "RGB16":
        return _png_16bit_rgb(8, GREY * 257), ".png"
    grey = Image.new("L", (8, 8), GREY)
    if mode in ("I;16", "I;16B"):
        image = Image.fromarray(np.full((8, 8), GREY * 257, np.uint16)).convert(mode) \
            if mode == "I;16" else Image.frombytes(
                "I;16B", (8, 8), np.full((8, 8), GREY * 257, ">u2").tobytes())
        suffix = ".png"
    elif mode == "1":
        image, suffix = Image.new("1", (8, 8), 1), ".png"
    elif mode == "P+transparency":
        image = grey.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
        image.info["transparency"] = 0
        suffix = ".png"
    elif mode == "CMYK":
        image, suffix = grey.convert("RGB").convert("CMYK"), ".jpg"
    else:
        image = grey.convert(mode)
        suffix = {"YCbCr": ".jpg"}.get(mode, ".png")
    buffer = io.BytesIO()
    image.save(buffer, {".png": "PNG", ".jpg": "JPEG"}[suffix])
    return buffer.getvalue(), suffix


MODES = ["1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I;16B",
         "RGB16"]


@pytest.mark.parametrize("mode", MODES)
def test_every_pixel_mode_is_scaled_to_8_bit_rgb(tmp_path, mode):
    content, suffix = _image(mode)
    path = tmp_path / f"image{suffix}"
    path.write_bytes(content)
    pixels = images._decode_image(str(path), 8, resize=True)
    assert pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8
    expected = 255 if mode == "1" else GREY
    tolerance = 3 if suffix == ".jpg" else 0  # JPEG's colour transforms round
    assert np.abs(pixels.astype(int) - expected).max() <= tolerance, (mode, pixels[0, 0])


@pytest.mark.parametrize("mode", ["I", "F"])
def test_modes_without_an_8_bit_meaning_are_refused_naming_file_and_mode(tmp_path, mode):
    image = Image.fromarray(np.full((8, 8), 100_000 if mode == "I" else 0.5,
                                    np.int32 if mode == "I" else np.float32))
    assert image.mode == mode
    with pytest.raises(DataError, match=rf"x\.png has .*Pillow mode {mode}"):
        data.to_rgb8(image, "x.png")


def test_16_bit_grey_pngs_keep_their_contrast(tmp_path):
    """The issue's case: 16-bit PNGs around 13,000 and 52,000 decode to about 50 and 203
    (the high byte, as TensorFlow's PNG decoder), not to 255 everywhere."""
    rng = np.random.default_rng(0)
    for name, level in (("dark", 13_000), ("bright", 52_000)):
        (tmp_path / "g" / name).mkdir(parents=True)
        for i in range(10):
            values = np.clip(level + rng.integers(-500, 500, (16, 16)), 0, 65535)
            Image.fromarray(values.astype(np.uint16)).save(tmp_path / "g" / name / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path / 'g'}", image_size=16)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    dark, bright = ds.class_names.index("dark"), ds.class_names.index("bright")
    assert x[y == dark].mean() == pytest.approx(13_000 / 256, abs=1.5)
    assert x[y == bright].mean() == pytest.approx(52_000 / 256, abs=1.5)


def test_several_unreadable_images_are_counted_and_the_first_named(tmp_path):
    squares(tmp_path / "f", {"a": (255, 0, 0), "b": (0, 255, 0)}, per_class=4)
    for i in range(5):
        (tmp_path / "f" / "a" / f"broken{i}.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as error:
        load_dataset(f"folder:{tmp_path / 'f'}", image_size=16)
    message = str(error.value)
    assert message.startswith("5 of 13 images cannot be used; the first 3:")
    assert "broken0.png" in message and "broken2.png" in message and "broken4" not in message


# ----------------------------------------------------------------------------- 3. labels


def _csv_task(tmp_path, labels: list[str]):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i, label in enumerate(labels):
        Image.new("RGB", (8, 8), (i * 10 % 255, 0, 0)).save(images / f"{i}.png")
        rows.append(f"{i}.png,{label}")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + "\n".join(rows) + "\n")
    return csv, images


def test_labels_are_the_text_in_the_file(tmp_path):
    """`NA`, `N/A`, `null`, `None` and `nan` are classes, not missing values."""
    names = ["AS", "EU", "NA", "N/A", "null", "None", "nan"]
    csv, images = _csv_task(tmp_path, names * 4)
    ds = load_dataset(f"csv:{csv}", image_dir=str(images), image_size=8)
    assert ds.class_names == tuple(sorted(names))
    assert len(ds.x_train) + len(ds.x_test) == 28


def test_an_empty_label_is_one_error_naming_file_and_row(tmp_path):
    csv, images = _csv_task(tmp_path, ["AS", "EU", "", "EU"])
    with pytest.raises(DataError, match=r"labels\.csv row 4 has an empty label"):
        load_dataset(f"csv:{csv}", image_dir=str(images), image_size=8)


def test_na_class_runs_end_to_end(tmp_path):
    csv, images = _csv_task(tmp_path, ["AS", "EU", "NA"] * 6)
    out = tmp_path / "out"
    proc = run_compare("--task", f"csv:{csv}", "--image-dir", str(images), "--image-size", "8",
                       "--framework", "torch", "--epochs", "1", "--no-plots", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = records_of(run_dirs(out)[0])[0]
    assert record.class_names == ["AS", "EU", "NA"]


# ----------------------------------------------------------------------------- 4. grid folds


def test_a_class_smaller_than_cv_is_refused_naming_it():
    y = np.array([0] * 20 + [1] * 20 + [2] * 2 + [3])
    check_cv_classes(y, ("a", "b", "c", "d"), 1)
    with pytest.raises(Exception, match=r"--cv 3: 2 classes .*'c' \(2\), 'd' \(1\)"):
        check_cv_classes(y, ("a", "b", "c", "d"), 3)


def test_a_small_class_is_said_when_the_test_split_cannot_be_stratified(tmp_path):
    squares(tmp_path / "f", {"a": (255, 0, 0), "b": (0, 255, 0)}, per_class=10)
    squares(tmp_path / "f2", {"c": (0, 0, 255)}, per_class=1)
    (tmp_path / "f2" / "c").rename(tmp_path / "f" / "c")
    ds = load_dataset(f"folder:{tmp_path / 'f'}", image_size=16)
    assert len(ds.notes) == 1 and "not stratified" in ds.notes[0] and "'c' (1)" in ds.notes[0]
    squares(tmp_path / "g", {"a": (255, 0, 0), "b": (0, 255, 0)}, per_class=10)
    assert load_dataset(f"folder:{tmp_path / 'g'}", image_size=16).notes == ()


# The grid search end to end (classes smaller than --cv, identical folds in both frameworks):
# tests/test_studies.py, test_grid_on_folds_in_both_frameworks.


# ----------------------------------------------------------------------------- 6. flags


@pytest.mark.parametrize("argv, named", [
    (("--task", "digits", "--pipeline", "transfer", "--dropout", "0.3"), "--dropout"),
    (("--task", "cifar10", "--pipeline", "transfer", "--model", "cifar10_cnn",
      "--batch-norm"), "--model, --batch-norm"),
    (("--task", "digits", "--image-size", "16"), "--image-size"),
    (("--task", "digits", "--image-dir", "x"), "--image-dir"),
    (("--task", "digits", "--data-dir", "x"), "--data-dir"),
    (("--task", "digits", "--no-download"), "--no-download"),
    (("--task", "digits", "--cv", "3"), "--cv"),  # typed at its default: still refused
    (("--task", "digits", "--check-parity", "--epochs", "3"), "--epochs"),
    (("--task", "digits", "--check-parity", "--lr=0.1"), "--lr"),
    (("--task", "cifar10", "--pipeline", "transfer", "--backbone", "resnet50v2",
      "--match-padding"), "--match-padding"),
])
def test_flags_that_would_be_ignored_are_refused(capsys, argv, named):
    from conftest import main_error

    out = () if "--check-parity" in argv else ("--out", "/nonexistent/never-written")
    message = main_error(capsys, *argv, *out)
    assert message.startswith(f"{named} would be ignored"), message


def test_a_transfer_config_records_no_cnn_architecture():
    import compare

    args = compare.build_parser().parse_args(["--task", "cifar10", "--pipeline", "transfer"])
    cfg = compare.config_from_args(args)
    assert cfg.arch.layers == () and cfg.arch.name == "mobilenetv2"


def test_importing_compare_leaves_matplotlib_alone():
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import matplotlib; matplotlib.use('svg'); import compare, common.figures; "
            "import sys; print(matplotlib.get_backend()); "
            "print('matplotlib.pyplot' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.split() == ["svg", "False"], proc.stderr
