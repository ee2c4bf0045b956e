"""Augmentation modules for PyTorch from common.augment. Mirrors keras_impl/augment.py.

The modules sit at the front of the model, like Keras' layers, so they act on whole training
batches and are inactive at inference (eval mode). Every transform draws its random parameters
per sample and applies them with whole-batch tensor operations (masks, one gather, one affine
grid), so a batch costs a few kernel launches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.augment import augment_item


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None, None, None], a, b)


def _tv():
    """torchvision's functional transforms. Importing torchvision costs ~2 s (it imports its
    models and torch._dynamo): build_augmenter imports it when the model is built (outside the
    timed epochs), and a run without augmentation never does."""
    from torchvision.transforms.v2 import functional

    return functional


def _flip(x, g, p):
    return _where(torch.rand(len(x), generator=g, device=x.device) < p, _tv().horizontal_flip(x), x)


def _crop(x, g, pad):
    pad = int(pad)
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def _grayscale(x, g, p):
    gray = _tv().rgb_to_grayscale(x, num_output_channels=3)
    return _where(torch.rand(len(x), generator=g, device=x.device) < p, gray, x)


def _affine(x, g, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor | None = None):
    """Rotate by `angle` (radians), zoom by `scale` around the centre and translate by `shift`
    ((n, 2): fractions of the width and height), zero fill."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = ((shift[:, 0] * 2, shift[:, 1] * 2) if shift is not None  # [-1, 1] spans the size
              else (torch.zeros_like(cos), torch.zeros_like(cos)))
    theta = torch.stack([torch.stack([cos, -sin, -tx], 1), torch.stack([sin, cos, -ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _rotate(x, g, degrees):
    d = math.radians(degrees)
    return _affine(x, g, _uniform(len(x), -d, d, g, x.device), torch.ones(len(x), device=x.device))


def _zoom(x, g, f):
    return _affine(x, g, torch.zeros(len(x), device=x.device), _uniform(len(x), 1 - f, 1 + f, g, x.device))


def _shift(x, g, f):
    """The twin of Keras' RandomTranslation(f, f, bilinear, zero fill)."""
    n = len(x)
    shift = torch.stack([_uniform(n, -f, f, g, x.device), _uniform(n, -f, f, g, x.device)], 1)
    return _affine(x, g, torch.zeros(n, device=x.device), torch.ones(n, device=x.device), shift)


def _contrast(x, g, f):
    factor = _uniform(len(x), 1 - f, 1 + f, g, x.device)[:, None, None, None]
    mean = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as Keras' RandomContrast
    return (x - mean) * factor + mean


TRANSFORMS = {"flip": _flip, "crop": _crop, "shift": _shift, "grayscale": _grayscale,
              "rotate": _rotate, "zoom": _zoom, "contrast": _contrast}


class RandomTransform(nn.Module):
    """One registry transform as a layer in front of the model, like keras.layers.Random*: it
    draws per-sample parameters in training mode and passes inputs through in eval mode."""

    def __init__(self, item: str, generator: torch.Generator):
        super().__init__()
        self.name, self.strength = augment_item(item)
        if self.name not in TRANSFORMS:
            raise ValueError(f"no torch transform for augmentation {self.name!r}")
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        with torch.no_grad():
            return TRANSFORMS[self.name](x, self.generator, self.strength)


def build_augmenter(names: tuple[str, ...], seed: int, input_shape: tuple[int, int, int],
                    device: str) -> list[nn.Module]:
    """The augmentation modules to put in front of the model (empty when there are none); they
    share one seeded generator on `device`. `input_shape`: the transforms read it from x."""
    generator = torch.Generator(device=device).manual_seed(seed)
    if names:
        _tv()  # imported now, while the model is built, not in the first timed epoch
    return [RandomTransform(name, generator) for name in names]
