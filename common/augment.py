"""Data augmentation, described once and translated by both frameworks.

Each entry names one random transform and its strength; `keras_impl.augment` maps it to a
`keras.layers.Random*` layer, `torch_impl.augment` to batched tensor operations (per-sample random
parameters, no per-image Python loop) built on `torchvision.transforms.v2.functional`. Both apply
it to training batches only, after the per-channel standardisation (so rotation/zoom/crop fill
with 0 = the mean colour, and contrast is not clipped to a pixel range).
"""

from __future__ import annotations

from common.errors import UserError

# name -> (parameter, value, what it does). Strengths follow common CIFAR-10 lab settings.
AUGMENTATIONS: dict[str, tuple[str, float, str]] = {
    "flip": ("p", 0.5, "horizontal flip with probability p"),
    "crop": ("pad", 4, "zero-pad by `pad` pixels, crop back at a random offset (= translate)"),
    "grayscale": ("p", 0.1, "convert to grayscale with probability p (RGB only)"),
    "rotate": ("degrees", 15, "rotate by a uniform angle in [-degrees, degrees]"),
    "zoom": ("factor", 0.1, "zoom by a uniform scale in [1 - factor, 1 + factor]"),
    "contrast": ("factor", 0.2, "scale contrast around the image mean by [1 - f, 1 + f]"),
}


def parse_augment(text: str | None, channels: int | None = None) -> tuple[str, ...]:
    """'flip,crop' -> ('flip', 'crop'); unknown names list the choices."""
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise UserError(f"unknown augmentation {', '.join(unknown)}; choose from: "
                        f"{', '.join(AUGMENTATIONS)} (comma-separated)")
    if len(set(names)) != len(names):
        raise UserError(f"--augment {text!r} names a transform twice")
    if channels is not None and channels != 3 and "grayscale" in names:
        raise UserError("--augment grayscale needs RGB images; this task has "
                        f"{channels} channel(s)")
    return names


def strength(name: str) -> float:
    """The registered strength of augmentation `name` (common.augment.AUGMENTATIONS; its unit is the
    augmentation's own: a fraction of the image, degrees, ...). KeyError for an unknown name."""
    return AUGMENTATIONS[name][1]
