"""Transfer learning as data: the backbone registry, the resolved `TransferSpec`, and the
framework-free helpers both workers and compare.py share.

`keras_impl.transfer` builds each backbone from `keras.applications`, `torch_impl.transfer` from
`torchvision.models`, or, for a backbone torchvision does not ship (`torch_from_keras`: ResNet50V2),
as a PyTorch twin of Keras' graph; this module says what each side must build and how it
preprocesses:

- a backbone is cut before its classifier; a new head (global average pool -> dropout -> dense)
  is trained in two phases driven by the same `common.loop.fit`: (1) the frozen base with
  BatchNorm in inference mode and a new head, on cached base features when nothing varies per
  epoch (no augmentation), (2) fine-tuning of the top `fine_tune_layers` *blocks* of the base at
  `fine_tune_lr`, BatchNorm still in inference mode (the Keras transfer-learning guide's rule);
- `--weights PATH` is a torchvision-format MobileNetV2 feature state dict loaded into *both*
  frameworks, so they start from the same pretrained backbone (`imagenet` cannot promise that:
  each framework ships its own ImageNet training). The PyTorch process reads such a file with
  torch.load(weights_only=True) and leaves its arrays in an .npz at `converted_weights_path`,
  so the Keras process reads plain arrays and never imports torch;
- the reverse for a `torch_from_keras` backbone: `imagenet` means Keras' ImageNet weights in
  *both* frameworks; a Keras process leaves them as plain arrays at `converted_imagenet_path`
  and the PyTorch twin loads those (PyTorch never imports keras).

This module never imports a framework.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.cache import default_cache_dir  # the project's one cache rule
from common.errors import UserError
from common.init import initial_weights
from common.specs import ArchSpec, layer

PIPELINES = ("cnn", "transfer")
WEIGHT_CHOICES = ("imagenet", "none")  # or a PATH
DEFAULT_IMAGE_SIZE = 96  # pixels; ImageNet training used 224, which is ~5x slower on a CPU
DEFAULT_FINE_TUNE_LAYERS = 3  # top blocks of the base unfrozen in phase 2
FINE_TUNE_LR_FACTOR = 0.1  # default fine-tune lr = head lr * this
HEAD_DROPOUT = 0.2  # as in the Keras transfer-learning guide
PROBE_IMAGES = 16  # first test images whose features each framework saves for the agreement check
# How a framework's graph pads (record and report wording)
PADDING_KERAS = "Keras' (stride-2 convs pad bottom/right only)"
PADDING_TORCHVISION = "torchvision's (stride-2 convs pad 1 px on every side)"
PADDING_ALIKE = "alike in both frameworks"


# ----------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone expects, applied to RGB images in [0, 1] (after resizing):
    out = (x[..., channels] - mean) / std, with channels reversed (RGB -> BGR) when `bgr`."""

    name: str
    description: str
    mean: tuple[float, float, float]  # in [0, 1] units, in the output channel order
    std: tuple[float, float, float]
    bgr: bool = False


TORCHVISION = Preprocessing(
    "torchvision mean/std",
    "RGB in [0, 1] minus the ImageNet mean (0.485, 0.456, 0.406), over std (0.229, 0.224, 0.225)",
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
KERAS_TF = Preprocessing(
    "keras tf mode [-1, 1]", "RGB scaled to [-1, 1] (x / 127.5 - 1: keras 'tf' mode)",
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
# 'caffe' mode works on 0-255 values: x * 255 - mean_255 = (x - mean_255 / 255) / (1 / 255)
KERAS_CAFFE = Preprocessing(
    "keras caffe mode (BGR - mean)",
    "BGR in 0-255 minus the ImageNet mean pixel (103.939, 116.779, 123.68): keras 'caffe' mode",
    mean=(103.939 / 255, 116.779 / 255, 123.68 / 255), std=(1 / 255, 1 / 255, 1 / 255), bgr=True)


# ----------------------------------------------------------------------------- backbones


@dataclass(frozen=True)
class Backbone:
    """One architecture both frameworks ship, cut before its classifier."""

    name: str
    keras_name: str  # keras.applications class
    torch_name: str  # torchvision.models builder (torch_impl.transfer class if torch_from_keras)
    feature_dim: int  # channels of the last feature map = length of the pooled feature vector
    blocks: int  # units --fine-tune-layers counts from the top (see `block_note`)
    block_note: str
    keras_preprocessing: Preprocessing  # what keras.applications.<module>.preprocess_input does
    torch_preprocessing: Preprocessing  # what the torchvision weights' transforms do
    min_size: int = 32  # smallest input keras.applications accepts
    path_weights: bool = False  # accepts --weights PATH (torchvision-format feature state dict)
    path_tensors: int = 0  # tensors in such a state dict (a cheap check before any run)
    # torchvision ships no such model: torch_impl.transfer builds a twin of Keras' graph, and
    # `imagenet` loads Keras' ImageNet weights in both frameworks (converted by a Keras process)
    torch_from_keras: bool = False
    # Keras pads stride-2 convolutions bottom/right only (TensorFlow 'same'), torchvision on both
    # sides; the Keras graph can pad like torchvision so the two compute the same function.
    padding_differs: bool = False
    # The block table both frameworks cut the base by (`stage_first_blocks`): units per stage
    # after the stem block (bottlenecks, dense layers); `transitions`: a block of its own between
    # two stages (DenseNet). Empty where the blocks are the backbone's own modules, one to one.
    stages: tuple[int, ...] = ()
    transitions: bool = False
    notes: str = ""


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "mobilenetv2", "MobileNetV2", "mobilenet_v2", feature_dim=1280, blocks=19,
            block_note="stem conv, 17 inverted-residual blocks, final 1x1 conv "
            "(torchvision's `features` entries)",
            keras_preprocessing=KERAS_TF, torch_preprocessing=TORCHVISION,
            path_weights=True, path_tensors=312, padding_differs=True,
            notes="width 1.0; BatchNorm epsilon 1e-3 in Keras, 1e-5 in torchvision",
        ),
        Backbone(
            "resnet50", "ResNet50", "resnet50", feature_dim=2048, blocks=17,
            block_note="stem (conv, BN, max-pool), 16 bottleneck blocks", stages=(3, 4, 6, 3),
            keras_preprocessing=KERAS_CAFFE, torch_preprocessing=TORCHVISION,
            notes="Keras builds ResNet v1 (stride 2 in a bottleneck's first 1x1 conv, convs with "
            "biases), torchvision v1.5 (stride 2 in the 3x3 conv, no conv biases): the same "
            "layers, not the same function",
        ),
        Backbone(
            "vgg16", "VGG16", "vgg16", feature_dim=512, blocks=5,
            block_note="5 conv blocks, each ending in a max-pool",
            keras_preprocessing=KERAS_CAFFE, torch_preprocessing=TORCHVISION,
            notes="identical architecture in both (13 convs with biases, no BatchNorm)",
        ),
        Backbone(
            "resnet50v2", "ResNet50V2", "ResNet50V2", feature_dim=2048, blocks=17,
            block_note="stem (7x7 conv, max-pool), 16 pre-activation bottleneck units (the last "
            "with the final BN-ReLU)", stages=(3, 4, 6, 3),
            # the twin runs Keras' weights, so it is fed as they were trained: 'tf' mode
            keras_preprocessing=KERAS_TF, torch_preprocessing=KERAS_TF, torch_from_keras=True,
            notes="torchvision has no ResNet50V2 (timm's resnetv2_50 is another graph: stride in "
            "a stage's first unit, other conv biases and stem padding), so PyTorch runs a twin of "
            "Keras' graph: stride 2 in a stage's last unit (1x1 max-pool shortcut), zero padding "
            "before each 3x3 conv and the stem max-pool, conv biases where Keras has them, "
            "BatchNorm epsilon 1.001e-5; `imagenet` is Keras' weights in both",
        ),
        Backbone(
            "densenet121", "DenseNet121", "densenet121", feature_dim=1024, blocks=62,
            block_note="stem (conv, BN, ReLU, max-pool), then in order 58 dense layers and the 3 "
            "transitions between the 4 dense blocks (6, 12, 24, 16 layers), the last dense layer "
            "with the final BN-ReLU", stages=(6, 12, 24, 16), transitions=True,
            # Keras' densenet.preprocess_input is 'torch' mode: torchvision's mean/std
            keras_preprocessing=TORCHVISION, torch_preprocessing=TORCHVISION,
            notes="identical architecture in both; BatchNorm epsilon 1.001e-5 in Keras, 1e-5 in "
            "torchvision, set to Keras' 1.001e-5 on the PyTorch side (a relative change of "
            "gamma / sqrt(var + eps) below 1e-8 for its own weights) so the graphs are equal",
        ),
    )
}


def torch_label(b: Backbone) -> str:
    """What the PyTorch side builds, for help texts and reports."""
    if b.torch_from_keras:
        return f"torch_impl.transfer.{b.torch_name} (a twin of Keras' graph)"
    return f"torchvision.models.{b.torch_name}"


def stage_first_blocks(b: Backbone) -> dict[int, int]:
    """The block table of a staged backbone: stage number as Keras names its layers (conv2 ..
    conv5) -> the index of the stage's first block, the stem being block 0 (a DenseNet's
    transition before stage k is block first[k] - 1). {} for a backbone without `stages`."""
    first, start = {}, 1
    for number, units in enumerate(b.stages, start=2):
        first[number] = start
        start += units + (1 if b.transitions and number < len(b.stages) + 1 else 0)
    return first


def get_backbone(name: str) -> Backbone:
    """The registered Backbone `name`. Raises UserError naming the backbones for an unknown name."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def is_path(weights: str) -> bool:
    """Whether --weights names a file (anything but imagenet and none)."""
    return weights not in WEIGHT_CHOICES


def resolve_weights(text: str, backbone: str) -> str:
    """'imagenet' | 'none' | PATH (made absolute: workers run from the repository root)."""
    if not is_path(text):
        return text
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"--weights {text}: no such file (give imagenet, none, or the path of a "
                        "torchvision-format MobileNetV2 feature state dict)")
    if not get_backbone(backbone).path_weights:
        supported = [b.name for b in BACKBONES.values() if b.path_weights]
        raise UserError(f"--weights PATH loads a torchvision-format state dict into both "
                        f"frameworks; supported for: {', '.join(supported)} (not {backbone})")
    return str(path)


# ----------------------------------------------------------------------------- the transfer settings


@dataclass(frozen=True)
class TransferSpec:
    """The resolved transfer-learning settings (saved in every record with the RunConfig)."""

    backbone: str
    weights: str = "imagenet"  # 'imagenet' | 'none' | absolute PATH
    image_size: int = DEFAULT_IMAGE_SIZE  # square input of the backbone, pixels
    fine_tune_layers: int = DEFAULT_FINE_TUNE_LAYERS  # top blocks of the base unfrozen in phase 2
    fine_tune_lr: float = 1e-3
    fine_tune_epochs: int = 1  # 0 skips phase 2
    dropout: float = HEAD_DROPOUT
    match_padding: bool = False  # Keras pads stride-2 convs like torchvision (mobilenetv2)

    def __post_init__(self) -> None:
        b = get_backbone(self.backbone)
        checks = [
            (self.image_size >= b.min_size,
             f"--image-size must be at least {b.min_size} for {b.name} (ImageNet weights were "
             "trained at 224)"),
            (0 <= self.fine_tune_layers <= b.blocks,
             f"--fine-tune-layers counts blocks of {b.name}: 0 to {b.blocks} ({b.block_note})"),
            (self.fine_tune_epochs >= 0, "--fine-tune-epochs must be at least 0"),
            (self.fine_tune_epochs == 0 or self.fine_tune_layers >= 1,
             "--fine-tune-layers 0 leaves nothing to fine-tune; give --fine-tune-epochs 0 to "
             "skip phase 2"),
            (self.fine_tune_lr > 0, "--fine-tune-lr must be positive"),
            (0 <= self.dropout < 1, "head dropout must be in [0, 1)"),
            (not self.match_padding or b.padding_differs,
             f"--match-padding: {b.name}'s graphs already pad alike in both frameworks"),
            (self.weights in WEIGHT_CHOICES or Path(self.weights).is_absolute(),
             "TransferSpec.weights must be imagenet, none or an absolute path"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @property
    def info(self) -> Backbone:
        """The registered Backbone of `backbone`."""
        return BACKBONES[self.backbone]

    def preprocessing(self, framework: str) -> Preprocessing:
        """PATH weights are torchvision-trained: both sides then normalise the torchvision way."""
        if is_path(self.weights) or framework == "torch":
            return self.info.torch_preprocessing
        return self.info.keras_preprocessing

    def weights_label(self) -> str:
        """imagenet, none, or the PATH's file name (reports and tables)."""
        return Path(self.weights).name if is_path(self.weights) else self.weights


def weights_alternatives(transfer: TransferSpec) -> str:
    """What else --weights accepts for this backbone (the end of a missing-weights error)."""
    return "--weights none or --weights PATH" if transfer.info.path_weights else "--weights none"


def download_failure(err: Exception, url: str) -> str:
    """One short clause for a failed weights download (the url itself is long and known)."""
    text = " ".join(str(err).replace(url, "the weights url").split())
    return f"the download failed ({type(err).__name__}: {text[:150]})"


def features_cacheable(augment: tuple[str, ...]) -> bool:
    """Phase 1 can train the head on base features computed once unless the inputs change every
    epoch: augmentation draws new images each epoch, so the base must run on every batch."""
    return not augment


def head_weights(feature_dim: int, num_classes: int, seed: int) -> dict[str, np.ndarray]:
    """The new dense layer's shared start (Keras layout: kernel (in, out)): the same Glorot rule
    and random stream as the CNNs' common.init, for an input of `feature_dim` pooled features."""
    # a flatten draws nothing: the classifier's kernel is the stream's first draw
    head = ArchSpec("transfer_head", layers=(layer("flatten"),))
    return initial_weights(head, (1, 1, feature_dim), num_classes, seed)[0]


# ----------------------------------------------------------------------------- PATH weights


def converted_weights_path(weights: str, cache_dir: str | None) -> Path:
    """Where the PyTorch process leaves --weights PATH as plain arrays for the Keras process
    (torch_impl.transfer.convert_path_weights writes it, keras_impl.transfer reads it):
    <cache>/weights/<stem>-<hash>.npz. The hash covers the file's absolute path, size and
    modification time, so an edited or replaced file is converted again."""
    path = Path(weights).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError as err:
        raise UserError(f"--weights {weights}: cannot read it ({err.strerror})") from None
    key = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return cache / "weights" / f"{path.stem}-{digest}.npz"


# ----------------------------------------------------------------------------- Keras weights, twin

# Keras' no-top ImageNet file (name, md5, as keras.applications passes them to get_file) of each
# `torch_from_keras` backbone. get_file checks the md5, so it names the content: the converted
# arrays are cached under it and converted again if Keras ever ships other weights.
KERAS_IMAGENET_FILES = {
    "resnet50v2": ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   "fac2f116257151a9d068a22e544a4917"),
}


def converted_imagenet_path(backbone: str, cache_dir: str | None) -> Path:
    """Where a Keras process leaves Keras' ImageNet weights of a `torch_from_keras` backbone as
    plain arrays for the PyTorch twin (keras_impl.transfer.convert_imagenet_weights writes it,
    torch_impl.transfer reads it): <cache>/weights/<Keras file stem>-<md5 prefix>.npz, one array
    per Keras weight, named '<layer>.<weight>' (e.g. 'conv1_conv.kernel'), in layer order."""
    name, md5 = KERAS_IMAGENET_FILES[backbone]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return cache / "weights" / f"{Path(name).stem}-{md5[:12]}.npz"


# ----------------------------------------------------------------------------- probes


def probe_path(record_path: str | Path) -> Path:
    """Where a worker saves its probe features: record-X.json -> features-X.npz beside it."""
    p = Path(record_path)
    return p.with_name(p.name.replace("record-", "features-", 1)).with_suffix(".npz")
