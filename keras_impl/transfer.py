"""Transfer learning in Keras: a keras.applications backbone (include_top=False) with a new
head. Mirrors torch_impl/transfer.py; what to build comes from common.transfer.

Keras' MobileNetV2 pads its stride-2 convolutions bottom/right only (TensorFlow 'same'),
torchvision's on every side; `--match-padding` rebuilds the Keras graph with torchvision's
padding, the function torchvision-trained PATH weights were trained with (`pad_like_torchvision`).
For a backbone torchvision does not ship (ResNet50V2), the PyTorch side runs a twin of Keras'
graph with Keras' ImageNet weights, which a Keras process converts to plain arrays first
(`convert_imagenet_weights`).

`TransferModel` holds the parts the worker's two phases train with the ordinary KerasTrainer:
`head` (pooled features -> logits, phase 1 on cached features) and `net` (images -> logits,
sharing that head: phase 2, or phase 1 when features cannot be cached). `net` calls the base
with `training=False`, so BatchNorm keeps its moving statistics also while the top blocks are
fine-tuned (the Keras transfer-learning guide's rule).
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import keras
import numpy as np
from keras import ops
# get_file's default folder ($KERAS_HOME, else ~/.keras): Keras exports no public accessor, and
# this is the function get_file itself calls, so the folder named in errors is Keras' own.
from keras.src.backend.config import keras_home

from common.config import RunConfig
from common.data.prepare import PreparedData
from common.errors import UserError
from common.files import write_arrays
from common.loop import TRANSFER_EVAL_BATCH_SIZE
from common.transfer import (
    BACKBONES, KERAS_IMAGENET_FILES, PADDING_ALIKE, PADDING_KERAS, PADDING_TORCHVISION, Preprocessing,
    TransferSpec, converted_imagenet_path, converted_weights_path, download_failure,
    head_weights, is_path, stage_first_blocks, weights_alternatives,
)

TORCH_BN_EPSILON = 1e-5  # torchvision's BatchNorm2d default, which PATH weights were trained with
_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)  # sizes Keras ships MobileNetV2 weights for


# ----------------------------------------------------------------------------- weights


def imagenet_source(transfer: TransferSpec) -> tuple[str, str, str | None]:
    """(file name, url, md5 or None) of the no-top ImageNet weights, exactly as
    keras.applications passes them to keras.utils.get_file (keras/src/applications/
    {mobilenet_v2,resnet,vgg16,densenet}.py; Keras ships no hash for MobileNetV2)."""
    if transfer.backbone == "mobilenetv2":
        # Keras falls back to its 224 weights for other sizes (with a warning)
        rows = transfer.image_size if transfer.image_size in _MOBILENET_V2_SIZES else 224
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
        return name, f"{_APPS}mobilenet_v2/{name}", None
    if transfer.backbone == "resnet50":
        name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return name, f"{_APPS}resnet/{name}", "4d473c1dd8becc155b73f8504c6f6626"
    if transfer.backbone == "vgg16":
        name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return name, f"{_APPS}vgg16/{name}", "6d6bbae143d832006294945121d1f1fc"
    if transfer.backbone == "resnet50v2":  # common.transfer keys the converted arrays by its md5
        name, md5 = KERAS_IMAGENET_FILES[transfer.backbone]
        return name, f"{_APPS}resnet/{name}", md5
    if transfer.backbone == "densenet121":
        name = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return name, f"{_APPS}densenet/{name}", "30ee3e1110167f948a6b9946edeeb738"
    raise ValueError(f"no keras weights file for {transfer.backbone}")


def imagenet_file(transfer: TransferSpec) -> Path:
    """Where this framework's cache keeps the backbone's ImageNet weights (present or not):
    <Keras home>/models/<file>, the folder keras.utils.get_file uses ($KERAS_HOME moves it)."""
    return Path(keras_home()).expanduser() / "models" / imagenet_source(transfer)[0]


def fetch_imagenet(transfer: TransferSpec, download: bool) -> str:
    """The cached ImageNet weights' path; downloads them (if allowed) when absent.

    keras.utils.get_file keeps them where keras.applications(weights="imagenet") looks
    (<Keras home>/models) and checks the hash Keras ships. It sets no timeout: a connection
    that stalls mid-download waits until the OS gives up; --no-download with the file placed
    by hand avoids the network altogether."""
    name, url, md5 = imagenet_source(transfer)
    path = imagenet_file(transfer)
    if download:
        try:  # returns the cached file when present and intact, else downloads it
            return keras.utils.get_file(name, url, cache_subdir="models", file_hash=md5)
        # offline, DNS, HTTP, hash or disk: each only means the user must place the file by hand
        except Exception as err:  # noqa: BLE001
            reason = download_failure(err, url)
    elif path.is_file():
        return str(path)
    else:
        reason = "downloads are off (--no-download)"
    raise UserError(f"keras.applications' ImageNet weights for {transfer.backbone} are not in the "
                    f"cache and {reason}: place {name} in {path.parent} (the Keras cache; "
                    "$KERAS_HOME moves it), or use " + weights_alternatives(transfer))


def load_path_weights(base: keras.Model, weights: str, cache_dir: str | None) -> None:
    """--weights PATH (`weights`: a torchvision-format feature state dict) into `base`, in place.

    Keras never imports torch: it reads the plain arrays torch_impl.transfer.convert_path_weights
    saved from the file at common.transfer.converted_weights_path(weights, cache_dir), and
    converts them layer by layer in order: conv kernels (O,I,h,w) -> (h,w,I,O), depthwise
    (C,1,h,w) -> (h,w,C,1), and BatchNorm gamma rescaled so gamma / sqrt(var + Keras' eps)
    equals torchvision's gamma / sqrt(var + 1e-5). Raises UserError when the converted arrays
    are unreadable or do not fit the base layer by layer. (torch_impl.transfer.load_path_weights
    has the same contract.)"""
    path = str(converted_weights_path(weights, cache_dir))
    modules: dict[str, dict[str, np.ndarray]] = collections.OrderedDict()
    try:
        with np.load(path) as arrays:
            for key in arrays.files:  # the state dict's order
                module, _, name = key.rpartition(".")
                modules.setdefault(module, {})[name] = arrays[key]
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: converted weights unreadable ({type(err).__name__}); delete "
                        "it and rerun compare.py, which converts --weights PATH first") from None
    layers = [layer for layer in base.layers if layer.weights]
    if len(layers) != len(modules):
        raise UserError(f"{path}: {len(modules)} layers with weights, Keras' "
                        f"{base.name} has {len(layers)}")
    for layer, (module, t) in zip(layers, modules.items()):
        if isinstance(layer, keras.layers.BatchNormalization):
            var = t["running_var"]
            gamma = t["weight"] * np.sqrt((var + layer.epsilon) / (var + TORCH_BN_EPSILON))
            values = [gamma, t["bias"], t["running_mean"], var]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [t["weight"].transpose(2, 3, 0, 1)]
        else:
            values = [t["weight"].transpose(2, 3, 1, 0)] + ([t["bias"]] if "bias" in t else [])
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise UserError(f"{path}: {module} {[v.shape for v in values]} does not "
                            f"fit Keras layer {layer.name} {expected}")
        layer.set_weights([v.astype(np.float32) for v in values])


def keras_arrays(base: keras.Model) -> dict[str, np.ndarray]:
    """Every weight of the base as Keras stores it, named '<layer>.<weight>' (e.g.
    'conv1_conv.kernel', 'post_bn.moving_variance'), in layer order: what the PyTorch twin
    loads by name (torch_impl.resnet50v2.load_imagenet_arrays transposes the kernels)."""
    return {f"{layer.name}.{w.name}": np.asarray(w.numpy(), np.float32)
            for layer in base.layers for w in layer.weights}


def convert_imagenet_weights(transfer: TransferSpec, download: bool, cache_dir: str | None) -> Path:
    """Keras' ImageNet weights of a backbone the PyTorch side runs as a twin (common.transfer.
    Backbone.torch_from_keras) as plain arrays (`keras_arrays`), saved once at common.transfer.
    converted_imagenet_path; that path. compare.py calls this in a Keras process before any
    run, so PyTorch never imports keras, and offline the one line names Keras' cache file."""
    out = converted_imagenet_path(transfer.backbone, cache_dir)
    if out.is_file():  # named after the md5 Keras checks: still these weights' arrays
        return out
    base, _ = build_base(transfer, download, cache_dir)  # fetches (or names the missing file)
    try:
        write_arrays(out, keras_arrays(base))
    except OSError as err:
        raise UserError(f"cannot write converted weights to {out.parent} ({err.strerror}); "
                        "--cache-dir moves them") from None
    return out


# ----------------------------------------------------------------------------- the graph


def block_index(backbone: str, layer_name: str) -> int:
    """Which block (common.transfer.Backbone.block_note) a base layer with weights belongs to.
    The torch side's split_blocks gives the same blocks."""
    if backbone == "mobilenetv2":
        if layer_name in ("Conv1", "bn_Conv1", "Conv1_relu"):
            return 0
        if layer_name.startswith("expanded_conv_"):
            return 1
        if match := re.match(r"block_(\d+)_", layer_name):
            return int(match[1]) + 1
        if layer_name in ("Conv_1", "Conv_1_bn", "out_relu"):
            return 18
    elif backbone in ("resnet50", "resnet50v2"):
        # the stem 0, then the bottlenecks of stages conv2..conv5 (common.transfer's table)
        first, last = stage_first_blocks(BACKBONES[backbone]), BACKBONES[backbone].blocks - 1
        if layer_name.startswith(("conv1_", "pool1_")):
            return 0
        if match := re.match(r"conv(\d)_block(\d+)_", layer_name):
            return first[int(match[1])] + int(match[2]) - 1
        if layer_name.startswith("post_"):  # v2's final BN-ReLU: with the last unit
            return last
    elif backbone == "densenet121":
        # the stem 0; the dense layers of blocks conv2..conv5 and the transitions pool2..pool4
        # between them (common.transfer's table: conv2 1-6, pool2 7, conv3 8-19, ...)
        first, last = stage_first_blocks(BACKBONES[backbone]), BACKBONES[backbone].blocks - 1
        if layer_name.startswith(("conv1_", "pool1")):
            return 0
        if match := re.match(r"conv(\d)_block(\d+)_", layer_name):
            return first[int(match[1])] + int(match[2]) - 1
        if match := re.match(r"pool(\d)_", layer_name):
            return first[int(match[1]) + 1] - 1
        if layer_name in ("bn", "relu"):  # the final BN-ReLU: with the last dense layer
            return last
    elif backbone == "vgg16":
        if match := re.match(r"block(\d)_", layer_name):
            return int(match[1]) - 1
    raise ValueError(f"{backbone}: layer {layer_name!r} is in no block")


class SymmetricPadConv2D(keras.layers.Conv2D):
    """A stride-2 'same' Conv2D that pads kernel_size // 2 pixels on every side, as torchvision
    does (TensorFlow's 'same' puts the odd pixel bottom/right only); the conv itself is 'valid'."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "padding": "valid"})

    def call(self, x):
        p = self.kernel_size[0] // 2
        return super().call(ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        p = 2 * (self.kernel_size[0] // 2)
        return super().compute_output_shape(
            (n, None if h is None else h + p, None if w is None else w + p, c))


def pad_like_torchvision(base: keras.Model) -> keras.Model:
    """A copy of Keras' MobileNetV2 (same layer names and weights) whose stride-2 convolutions
    pad 1 pixel on every side like torchvision's: the stem conv pads itself, each stride-2
    block's ZeroPadding2D pads ((1, 1), (1, 1)) instead of ((0, 1), (0, 1)). Output sizes are
    unchanged: a 3x3 stride-2 'valid' conv gives the same size from n + 1 and n + 2 pixels."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, keras.layers.ZeroPadding2D):
            config["padding"] = ((1, 1), (1, 1))
        elif (type(layer) is keras.layers.Conv2D and layer.strides == (2, 2)
              and layer.padding == "same"):
            return SymmetricPadConv2D.from_config(config)
        return layer.__class__.from_config(config)

    model = keras.models.clone_model(base, clone_function=clone)
    model.set_weights(base.get_weights())
    return model


class Preprocess(keras.layers.Layer):
    """[0, 1] NHWC images -> the backbone's input: gray -> RGB, bilinear resize (half-pixel
    centres, no antialiasing: what torch's F.interpolate does), channel order, mean/std."""

    def __init__(self, size: int, prep: Preprocessing, **kwargs):
        super().__init__(**kwargs)
        self.size, self.bgr = size, prep.bgr
        self.mean = np.array(prep.mean, np.float32)
        self.std = np.array(prep.std, np.float32)

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if tuple(x.shape[1:3]) != (self.size, self.size):
            x = ops.image.resize(x, (self.size, self.size), interpolation="bilinear",
                                 antialias=False)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        return (x - self.mean) / self.std

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)


# ----------------------------------------------------------------------------- the model


def build_base(transfer: TransferSpec, download: bool = True,
               cache_dir: str | None = None) -> tuple[keras.Model, str]:
    """The base with its weights, and where they came from (for the record). PATH weights come
    from their converted arrays in `cache_dir` (see common.transfer.converted_weights_path)."""
    b = transfer.info
    app = getattr(keras.applications, b.keras_name)
    shape = (transfer.image_size, transfer.image_size, 3)
    if transfer.weights == "imagenet":
        path = fetch_imagenet(transfer, download)
        try:  # the file get_file returned: the one weights="imagenet" would load
            base = app(input_shape=shape, include_top=False, weights=path)
        except (OSError, ValueError) as err:  # e.g. a truncated file in the cache
            raise UserError(f"keras.applications could not load {path} ({err}); delete it and "
                            "retry, or use " + weights_alternatives(transfer)) from None
        source = f"keras.applications {b.keras_name} ImageNet ({path})"
    else:
        base = app(input_shape=shape, include_top=False, weights=None)
        source = "random initialisation (Keras' own)"
    if is_path(transfer.weights):
        load_path_weights(base, transfer.weights, cache_dir)
        source = (f"{transfer.weights} (converted: kernels to HWIO, depthwise to (h,w,C,1), "
                  "BatchNorm gamma rescaled for epsilon 1e-3)")
    return base, source


class TransferModel:
    """The backbone, its preprocessing and a new head, for common.worker.fit_transfer."""

    def __init__(self, transfer: TransferSpec, input_shape: tuple[int, int, int], num_classes: int,
                 seed: int, shared_init: bool, front: list | tuple = (), device: str = "cpu",
                 download: bool = True, cache_dir: str | None = None):
        """`front`: augmentation layers before the preprocessing, active in training only
        (phase 2 and uncached phase 1). `device` is unused here: Keras places the model where
        keras_impl.train.resolve_device left the visible devices."""
        self.transfer = transfer
        self.base, self.weights_source = build_base(transfer, download, cache_dir)
        self.other_base = None  # the other padding's graph: the probe compares both (PATH)
        if transfer.info.padding_differs and (transfer.match_padding or is_path(transfer.weights)):
            symmetric = pad_like_torchvision(self.base)
            self.base, self.other_base = ((symmetric, self.base) if transfer.match_padding
                                          else (self.base, symmetric))
        self.preprocessing = transfer.preprocessing("keras")
        self.head = keras.Sequential([
            keras.Input((transfer.info.feature_dim,)), keras.layers.Dropout(transfer.dropout),
            keras.layers.Dense(num_classes)], name="head")
        if shared_init:
            w = head_weights(transfer.info.feature_dim, num_classes, seed)
            self.head.layers[-1].set_weights([w["kernel"], w["bias"]])
        preprocess = Preprocess(transfer.image_size, self.preprocessing, name="preprocess")
        pool = keras.layers.GlobalAveragePooling2D(name="pool")

        def features(x, base: keras.Model):
            return pool(base(preprocess(x), training=False))  # BatchNorm: inference mode

        images = keras.Input(input_shape)
        self.feature_model = keras.Model(images, features(images, self.base), name="features")
        self.other_feature_model = None if self.other_base is None else keras.Model(
            images, features(images, self.other_base), name="other_features")
        x = images = keras.Input(input_shape)
        for layer in front:
            x = layer(x)
        self.net = keras.Model(images, self.head(features(x, self.base)),
                               name=f"{transfer.backbone}_transfer")
        self.padding_name = (PADDING_ALIKE if not transfer.info.padding_differs else
                             PADDING_TORCHVISION if transfer.match_padding else PADDING_KERAS)
        self.params = self.freeze(transfer.info.blocks)
        self.freeze(0)

    def freeze(self, blocks: int) -> int:
        """Only the top `blocks` blocks of the base (and the head) train; returns the trainable
        parameter count. Call before compiling (a KerasTrainer compiles when created)."""
        first = self.transfer.info.blocks - blocks
        for layer in self.base.layers:
            if layer.weights:
                layer.trainable = block_index(self.transfer.backbone, layer.name) >= first
        return int(sum(np.prod(v.shape) for v in self.net.trainable_weights))

    def features(self, x: np.ndarray) -> np.ndarray:
        """Pooled base features of NHWC [0, 1] images, in inference mode, in batches."""
        return self.feature_model.predict(x, batch_size=TRANSFER_EVAL_BATCH_SIZE, verbose=0)

    def probe(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The base's features of x and, where the padding differs, the other graph's too."""
        result = {"features": self.features(x)}
        if self.other_feature_model is not None:
            result["features_other_padding"] = self.other_feature_model.predict(
                x, batch_size=TRANSFER_EVAL_BATCH_SIZE, verbose=0)
        return result


def make_transfer_model(cfg: RunConfig, data: PreparedData, front: list | tuple,
                        device: str) -> TransferModel:
    """The TransferModel of cfg.transfer for the prepared data's shape and classes, with the
    augmentation `front` before the preprocessing, on `device`. Mirrors
    torch_impl.transfer.make_transfer_model."""
    return TransferModel(cfg.transfer, data.input_shape, data.num_classes, cfg.seed,
                         cfg.init == "shared", front, device, cfg.download, cfg.cache_dir)


def probe(transfer: TransferSpec, images: np.ndarray,
          cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """Pooled base features of [0, 1] NHWC images (the cross-framework agreement check)."""
    return TransferModel(transfer, images.shape[1:], num_classes=1, seed=0, shared_init=False,
                         cache_dir=cache_dir).probe(images)
