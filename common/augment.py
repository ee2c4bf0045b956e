"""Data augmentation, described once and translated by both frameworks.

Each entry names one random transform and its strength; `keras_impl.augment` maps it to a
`keras.layers.Random*` layer, `torch_impl.augment` to batched tensor operations (per-sample random
parameters, no per-image Python loop) built on `torchvision.transforms.v2.functional`. Both apply
it to training batches only, after the per-channel standardisation (so rotation/zoom/crop fill
with 0 = the mean colour, and contrast is not clipped to a pixel range).
"""

from __future__ import annotations

from common.errors import UserError

# name -> (parameter, default value, what it does). Strengths follow common CIFAR-10 lab
# settings; `--augment flip=0.3,rotate=10` gives others.
AUGMENTATIONS: dict[str, tuple[str, float, str]] = {
    "flip": ("p", 0.5, "horizontal flip with probability p"),
    "crop": ("pad", 4, "zero-pad by `pad` pixels, crop back at a random offset (whole pixels)"),
    "shift": ("fraction", 0.1, "translate by a uniform fraction of the size in [-f, f] in each "
              "direction, bilinear, zero fill (Keras' RandomTranslation)"),
    "grayscale": ("p", 0.1, "convert to grayscale with probability p (RGB only)"),
    "rotate": ("degrees", 15, "rotate by a uniform angle in [-degrees, degrees]"),
    "zoom": ("factor", 0.1, "zoom by a uniform scale in [1 - factor, 1 + factor]"),
    "contrast": ("factor", 0.2, "scale contrast around the image mean by [1 - f, 1 + f]"),
}
# The valid range of each strength: (low, high, whether low itself is allowed).
_RANGES = {"flip": (0, 1, False), "grayscale": (0, 1, False), "crop": (1, 64, True),
           "shift": (0, 1, False), "rotate": (0, 180, False), "zoom": (0, 1, False),
           "contrast": (0, 1, False)}


def parse_augment(text: str | None, channels: int | None = None) -> tuple[str, ...]:
    """'flip,crop=2,rotate=10' -> ('flip=0.5', 'crop=2', 'rotate=10'): every transform with its
    strength (the registry's default where none is given), as the record keeps it. Raises
    UserError for an unknown name (listing the choices), a bad or out-of-range strength, a
    transform named twice, or grayscale without 3 channels."""
    if not text:
        return ()
    items = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation {name}; choose from: "
                            f"{', '.join(AUGMENTATIONS)} (comma-separated, optionally name=strength)")
        try:
            number = float(value) if value else float(AUGMENTATIONS[name][1])
        except ValueError:
            raise UserError(f"--augment {part}: the strength must be a number") from None
        low, high, closed = _RANGES[name]
        if not ((low <= number if closed else low < number) and number <= high) or (
                name == "crop" and number != int(number)):
            raise UserError(f"--augment {part}: {AUGMENTATIONS[name][0]} must be "
                            f"{'a whole number ' if name == 'crop' else ''}in "
                            f"{'[' if closed else '('}{low:g}, {high:g}]")
        items.append(f"{name}={number:g}")
    names = [item.split("=")[0] for item in items]
    if len(set(names)) != len(names):
        raise UserError(f"--augment {text!r} names a transform twice")
    if channels is not None and channels != 3 and "grayscale" in names:
        raise UserError("--augment grayscale needs RGB images; this task has "
                        f"{channels} channel(s)")
    return tuple(items)


def augment_item(item: str) -> tuple[str, float]:
    """('flip', 0.5) from a parsed item 'flip=0.5'; a bare name (records made before strengths
    were recorded) gets the registry's default. KeyError for an unknown name."""
    name, _, value = item.partition("=")
    return name, float(value) if value else float(AUGMENTATIONS[name][1])


def strength(name: str) -> float:
    """The registered default strength of augmentation `name` (its unit is the augmentation's
    own: a probability, pixels, degrees, ...). KeyError for an unknown name."""
    return AUGMENTATIONS[name][1]
