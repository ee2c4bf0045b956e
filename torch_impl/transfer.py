"""Transfer learning in PyTorch: a torchvision backbone, cut before its classifier, with a new
head. Mirrors keras_impl/transfer.py; what to build comes from common.transfer.

torchvision ships no ResNet50V2, and timm's resnetv2_50 is another graph, so `ResNet50V2` here is
a twin of keras.applications.ResNet50V2, layer for layer (torch_impl.resnet50v2); `imagenet`
loads Keras' ImageNet weights into it, converted to plain arrays by a Keras process
(`load_imagenet_arrays`).

`TransferModel` holds the parts the worker's two phases train with the ordinary TorchTrainer:
`head` (pooled features -> logits, phase 1 on cached features) and `net` (images -> logits,
sharing that head: phase 2, or phase 1 when features cannot be cached). The base always runs in
inference mode (`.eval()`: BatchNorm uses its moving statistics), also while its top blocks are
fine-tuned, as Keras does with `base(x, training=False)`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from common.config import RunConfig
from common.data.prepare import PreparedData
from common.errors import UserError
from common.files import write_arrays
from common.loop import TRANSFER_EVAL_BATCH_SIZE
from common.transfer import (
    BACKBONES, KERAS_IMAGENET_FILES, PADDING_ALIKE, PADDING_TORCHVISION, Preprocessing, TransferSpec,
    converted_imagenet_path, converted_weights_path, download_failure, head_weights, is_path,
    weights_alternatives,
)
from torch_impl.resnet50v2 import KERAS_BN_EPSILON, ResNet50V2, load_imagenet_arrays

# backbone -> torchvision weights enum (the ImageNet weights `imagenet` means on this side)
IMAGENET_WEIGHTS = {
    "mobilenetv2": torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
    "densenet121": torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
}


# ----------------------------------------------------------------------------- weights


def imagenet_source(transfer: TransferSpec) -> tuple[str, str, str | None]:
    """(file name, url, md5 or None) of the backbone's torchvision ImageNet checkpoint
    (torchvision names the file after its hash prefix and ships no md5). KeyError for a backbone
    torchvision lacks (Backbone.torch_from_keras)."""
    url = IMAGENET_WEIGHTS[transfer.backbone].url
    return os.path.basename(url), url, None


def imagenet_file(transfer: TransferSpec) -> Path:
    """Where this framework's cache keeps the backbone's ImageNet weights (present or not):
    $TORCH_HOME/hub/checkpoints/<file>, the folder torch.hub uses."""
    return Path(torch.hub.get_dir()) / "checkpoints" / imagenet_source(transfer)[0]


def fetch_imagenet(transfer: TransferSpec, download: bool) -> str:
    """The cached ImageNet checkpoint's path; downloads it (if allowed) when absent."""
    if transfer.info.torch_from_keras:  # no torchvision file: Keras' converted (build_base)
        raise UserError(f"torchvision has no ImageNet weights for {transfer.backbone}: PyTorch loads "
                        f"Keras' {KERAS_IMAGENET_FILES[transfer.backbone][0]}, which compare.py "
                        "converts in a Keras process first")
    _, url, _ = imagenet_source(transfer)
    path = imagenet_file(transfer)
    if path.is_file():
        return str(path)
    reason = "downloads are off (--no-download)"
    if download:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
            return str(path)
        # offline, DNS, HTTP or disk: each only means the user must place the file by hand
        except Exception as err:  # noqa: BLE001
            reason = download_failure(err, url)
    raise UserError(f"torchvision's ImageNet weights for {transfer.backbone} are not in the cache "
                    f"and {reason}: place {path.name} in {path.parent} (torch.hub's cache; "
                    "$TORCH_HOME moves it), or use " + weights_alternatives(transfer))


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """--weights PATH as torch.load(weights_only=True) reads it (tensors and plain containers
    only: a weights file cannot run code)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # the file is not a torch.save'd state dict: garbage, truncated, or holding other objects
    # (torch's own message for the last is many lines about weights_only)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise UserError(f"--weights {path}: torch.load(weights_only=True) cannot read it "
                        f"({type(err).__name__}); give a state dict saved with torch.save"
                        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--weights {path}: expected a state dict of tensors, found "
                        f"{type(state).__name__}")
    return state


def convert_path_weights(transfer: TransferSpec, cache_dir: str | None) -> Path:
    """--weights PATH as plain arrays for the Keras process (which never imports torch), saved
    once at common.transfer.converted_weights_path, keys in the file's order; that path.
    compare.py calls this in a PyTorch process before any run, so a bad file is one line."""
    out = converted_weights_path(transfer.weights, cache_dir)
    if out.is_file():  # named after the file's path, size and mtime: still this file's arrays
        return out
    state = _read_state_dict(transfer.weights)
    expected = transfer.info.path_tensors
    if len(state) != expected:
        raise UserError(f"--weights {transfer.weights}: {len(state)} tensors, but a torchvision "
                        f"{transfer.backbone} feature state dict has {expected}")
    try:
        write_arrays(out, {k: v.detach().cpu().numpy() for k, v in state.items()})
    except OSError as err:
        raise UserError(f"cannot write converted weights to {out.parent} ({err.strerror}); "
                        "--cache-dir moves them") from None
    return out


def load_path_weights(base: nn.Sequential, weights: str, cache_dir: str | None) -> None:
    """--weights PATH (`weights`: a torchvision-format feature state dict) into `base`, in place.

    PyTorch reads the file itself (torch.load, weights_only); `cache_dir` is unused here (the
    Keras side reads the arrays converted into it: keras_impl.transfer.load_path_weights has the
    same contract). Same tensors in the same order, other key names ('features.0.0.weight' for
    '0.0.weight'), so keys are renamed in order and loaded with strict=True. Raises UserError for
    an unreadable file, another tensor count, or a tensor whose shape does not fit."""
    path = weights
    state = _read_state_dict(path)
    target = base.state_dict()
    if len(state) != len(target):
        raise UserError(f"--weights {path}: {len(state)} tensors, the torchvision base has "
                        f"{len(target)}")
    renamed = {}
    for (name, value), (key, expected) in zip(state.items(), target.items()):
        if value.shape != expected.shape:
            raise UserError(f"--weights {path}: {name} has shape {tuple(value.shape)}, the base's "
                            f"{key} {tuple(expected.shape)}")
        renamed[key] = value
    base.load_state_dict(renamed, strict=True)


# ----------------------------------------------------------------------------- the graph


class DenseUnit(nn.Module):
    """One torchvision dense layer as a block of its own: x -> concat(x, layer(x)), what its
    _DenseBlock does layer by layer (Keras' conv_block, ending in a Concatenate)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layer(x)], 1)


def split_blocks(backbone: str, model: nn.Module) -> list[nn.Module]:
    """The base as the blocks --fine-tune-layers counts (common.transfer.Backbone.block_note):
    the model's own modules, checked against common.transfer's block table (the stages' unit
    counts and the number of blocks, which keras_impl.transfer.block_index reads too). Raises
    ValueError where the model does not fit the table."""
    b = BACKBONES[backbone]
    blocks = _split_blocks(backbone, model)
    stages = {"resnet50": lambda: [len(s) for s in (model.layer1, model.layer2, model.layer3,
                                                   model.layer4)],
              "resnet50v2": lambda: [n for _, n, _ in model.STAGES],
              "densenet121": lambda: [len(getattr(model.features, f"denseblock{i}"))
                                      for i in range(1, 5)]}
    if backbone in stages and tuple(stages[backbone]()) != b.stages:
        raise ValueError(f"{backbone}: stages of {stages[backbone]()} units, the table {b.stages}")
    if len(blocks) != b.blocks:
        raise ValueError(f"{backbone}: {len(blocks)} blocks, the table has {b.blocks}")
    return blocks


def _split_blocks(backbone: str, model: nn.Module) -> list[nn.Module]:
    if backbone == "mobilenetv2":
        return list(model.features)
    if backbone == "resnet50":
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return [stem, *model.layer1, *model.layer2, *model.layer3, *model.layer4]
    if backbone == "resnet50v2":  # the final BN-ReLU goes with the last unit (Keras: post_*)
        return [model.stem, *model.units[:-1],
                nn.Sequential(model.units[-1], model.post_bn, model.post_relu)]
    if backbone == "densenet121":
        f = model.features
        stem = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
        blocks: list[nn.Module] = [stem]
        for i in range(1, 5):
            blocks += [DenseUnit(layer) for layer in getattr(f, f"denseblock{i}").values()]
            if i < 4:
                blocks.append(getattr(f, f"transition{i}"))
        # torchvision's DenseNet.forward applies the ReLU after `features` (Keras: layer 'relu')
        blocks[-1] = nn.Sequential(blocks[-1], f.norm5, nn.ReLU())
        return blocks
    if backbone == "vgg16":
        blocks, current = [], []
        for layer in model.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = []
        return blocks
    raise ValueError(f"no torch blocks for {backbone}")


class Preprocess(nn.Module):
    """[0, 1] NCHW images -> the backbone's input: gray -> RGB, bilinear resize (half-pixel
    centres, no antialiasing: what keras.ops.image.resize does), channel order, mean/std."""

    def __init__(self, size: int, prep: Preprocessing):
        super().__init__()
        self.size, self.bgr = size, prep.bgr
        # not persistent: constants, not weights to save or restore
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=False)
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std


class TransferNet(nn.Module):
    """front (augmentation) -> preprocess -> base -> global average pool -> head (dropout,
    dense). The front modules act only in training mode, like Keras' augmentation layers."""

    def __init__(self, front: list[nn.Module] | tuple, preprocess: Preprocess,
                 base: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.front = nn.Sequential(*front)
        self.preprocess, self.base, self.head = preprocess, base, head
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Without the front: cached features and the probe see the images as they are."""
        return self.pool(self.base(self.preprocess(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.front(x)))

    def train(self, mode: bool = True) -> "TransferNet":
        super().train(mode)  # the front follows `mode`: it augments while training
        self.base.eval()  # BatchNorm in inference mode in both phases (Keras: training=False)
        return self


# ----------------------------------------------------------------------------- the model


def build_base(transfer: TransferSpec, download: bool = True,
               cache_dir: str | None = None) -> tuple[nn.Sequential, str]:
    """The base with its weights, and where they came from (for the record). PATH weights come
    from the file itself (torch.load); Keras' ImageNet weights for the ResNet50V2 twin from the
    arrays a Keras process converted into `cache_dir` (common.transfer.converted_imagenet_path)."""
    b = transfer.info
    if b.torch_from_keras:
        model = ResNet50V2()
        source = "random initialisation (PyTorch's default init of the Keras twin)"
        if transfer.weights == "imagenet":
            path = converted_imagenet_path(b.name, cache_dir)
            if not path.is_file():
                raise UserError(f"{path}: Keras' ImageNet weights for {b.name} are not converted "
                                "yet; compare.py converts them in a Keras process first")
            load_imagenet_arrays(model, str(path))
            source = (f"keras.applications {b.keras_name} ImageNet "
                      f"({KERAS_IMAGENET_FILES[b.name][0]}), converted by Keras ({path}: "
                      "kernels to OIhw)")
    elif transfer.weights == "imagenet":
        path = fetch_imagenet(transfer, download)
        model = torchvision.models.get_model(b.torch_name, weights=IMAGENET_WEIGHTS[b.name])
        source = f"torchvision {IMAGENET_WEIGHTS[b.name]} ({path})"
    else:
        model = torchvision.models.get_model(b.torch_name, weights=None)
        source = "random initialisation (torchvision's own)"
    if b.name == "densenet121":  # Keras' epsilon, so both graphs compute the same function
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = KERAS_BN_EPSILON
    base = nn.Sequential(*split_blocks(b.name, model))
    if is_path(transfer.weights):
        load_path_weights(base, transfer.weights, cache_dir)
        source = f"{transfer.weights} (keys renamed in order, strict)"
    return base, source


class TransferModel:
    """The backbone, its preprocessing and a new head, for common.worker.fit_transfer."""

    def __init__(self, transfer: TransferSpec, input_shape: tuple[int, int, int], num_classes: int,
                 seed: int, shared_init: bool, front: list | tuple = (), device: str = "cpu",
                 download: bool = True, cache_dir: str | None = None):
        """`front`: augmentation modules before the preprocessing, active in training only
        (phase 2 and uncached phase 1). `input_shape` (H, W, C) is kept for the record: torch
        modules take any size."""
        self.transfer, self.device, self.input_shape = transfer, device, tuple(input_shape)
        base, self.weights_source = build_base(transfer, download, cache_dir)
        self.preprocessing = transfer.preprocessing("torch")
        head = nn.Sequential(nn.Dropout(transfer.dropout),
                             nn.Linear(transfer.info.feature_dim, num_classes))
        if shared_init:
            w = head_weights(transfer.info.feature_dim, num_classes, seed)
            with torch.no_grad():
                head[1].weight.copy_(torch.from_numpy(w["kernel"].T))
                head[1].bias.copy_(torch.from_numpy(w["bias"]))
        preprocess = Preprocess(transfer.image_size, self.preprocessing)
        self.net = TransferNet(front, preprocess, base, head).to(device)
        self.head = self.net.head
        # --match-padding changes the Keras graph: torchvision's is the one PATH weights know
        self.padding_name = PADDING_TORCHVISION if transfer.info.padding_differs else PADDING_ALIKE
        self.params = sum(p.numel() for p in self.net.parameters())
        self.freeze(0)

    def freeze(self, blocks: int) -> int:
        """Only the top `blocks` blocks of the base (and the head) train; returns the trainable
        parameter count."""
        n = len(self.net.base)
        for i, block in enumerate(self.net.base):
            block.requires_grad_(i >= n - blocks)
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    @torch.no_grad()
    def features(self, x: np.ndarray) -> np.ndarray:
        """Pooled base features of NHWC [0, 1] images, in inference mode, in batches."""
        self.net.eval()
        out = []
        for start in range(0, len(x), TRANSFER_EVAL_BATCH_SIZE):
            batch = torch.from_numpy(x[start:start + TRANSFER_EVAL_BATCH_SIZE]).permute(0, 3, 1, 2)
            out.append(self.net.features(batch.to(self.device)).cpu().numpy())
        return np.concatenate(out)

    def probe(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The base's features of x, for the cross-framework agreement check."""
        return {"features": self.features(x)}


def make_transfer_model(cfg: RunConfig, data: PreparedData, front: list | tuple,
                        device: str) -> TransferModel:
    """The TransferModel of cfg.transfer for the prepared data's shape and classes, with the
    augmentation `front` before the preprocessing, on `device`. Mirrors
    keras_impl.transfer.make_transfer_model."""
    return TransferModel(cfg.transfer, data.input_shape, data.num_classes, cfg.seed,
                         cfg.init == "shared", front, device, cfg.download, cfg.cache_dir)


def probe(transfer: TransferSpec, images: np.ndarray,
          cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """Pooled base features of [0, 1] NHWC images (the cross-framework agreement check)."""
    return TransferModel(transfer, images.shape[1:], num_classes=1, seed=0, shared_init=False,
                         cache_dir=cache_dir).probe(images)
