"""Batched augmentation for PyTorch from common.augment. Mirrors keras_impl/augment.py.

Every transform draws its random parameters per sample and applies them with whole-batch tensor
operations (masks, one gather, one affine grid), so a batch costs a few kernel launches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from common.augment import strength


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None, None, None], a, b)


def _flip(x, g):
    return _where(torch.rand(len(x), generator=g, device=x.device) < strength("flip"),
                  TF.horizontal_flip(x), x)


def _crop(x, g):
    pad = int(strength("crop"))
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def _grayscale(x, g):
    gray = TF.rgb_to_grayscale(x, num_output_channels=3)
    return _where(torch.rand(len(x), generator=g, device=x.device) < strength("grayscale"), gray, x)


def _affine(x, g, angle: torch.Tensor, scale: torch.Tensor):
    """Rotate by `angle` (radians) and zoom by `scale` around the centre, zero fill."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _rotate(x, g):
    d = math.radians(strength("rotate"))
    return _affine(x, g, _uniform(len(x), -d, d, g, x.device), torch.ones(len(x), device=x.device))


def _zoom(x, g):
    f = strength("zoom")
    return _affine(x, g, torch.zeros(len(x), device=x.device), _uniform(len(x), 1 - f, 1 + f, g, x.device))


def _contrast(x, g):
    f = strength("contrast")
    factor = _uniform(len(x), 1 - f, 1 + f, g, x.device)[:, None, None, None]
    mean = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as Keras' RandomContrast
    return (x - mean) * factor + mean


TRANSFORMS = {"flip": _flip, "crop": _crop, "grayscale": _grayscale, "rotate": _rotate,
              "zoom": _zoom, "contrast": _contrast}


def build_augmenter(names: tuple[str, ...], seed: int, device: str):
    """A function batch -> augmented batch (NCHW), or None when there is nothing to apply."""
    if not names:
        return None
    generator = torch.Generator(device=device).manual_seed(seed)

    def augment(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for name in names:
                x = TRANSFORMS[name](x, generator)
        return x

    return augment
