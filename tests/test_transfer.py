"""Transfer learning: every backbone builds in both frameworks with the same blocks; a
torchvision-format MobileNetV2 state dict (made here, random) converts exactly to Keras, and
Keras' ResNet50V2 ImageNet file (made here, random) exactly to the PyTorch twin; offline
`imagenet`, bad weights files and bad flags are one line;
`--pipeline transfer` runs both phases end to end. Each framework runs in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, main_error, one_line_error, records_of, run_compare, run_dirs

from common.report.parity import feature_agreement
from common.transfer import (BACKBONES, KERAS_IMAGENET_FILES, TransferSpec, stage_first_blocks,
                             converted_imagenet_path, converted_weights_path)

# A torchvision-format MobileNetV2 feature state dict with random weights, made like the real
# file (keys 'features.*', 312 tensors, torch.save). Its BatchNorm statistics are those of its
# own activations on smooth random images (so the features depend on the input, as trained
# ones do, instead of saturating ReLU6), with conv kernels scaled at random so the running
# variances lie far from 1 (where the epsilon conversion matters), then perturbed and floored;
# gamma and beta are random.
_MAKE_WEIGHTS = """
import numpy as np, torch, torchvision
torch.manual_seed(0)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(1)
features = torchvision.models.mobilenet_v2(weights=None).features
rng = np.random.default_rng(1)
x = np.kron(rng.random((32, 6, 6, 3)), np.ones((1, 8, 8, 1))).astype(np.float32)
x = torch.from_numpy(x).permute(0, 3, 1, 2)
x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
    [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
with torch.no_grad():
    for m in features.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.mul_(float(torch.empty(1).uniform_(-1.5, 1.5, generator=g).exp()))
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
            m.momentum = None  # running statistics = those of the one batch below
            m.reset_running_stats()
    features.train()
    features(x)
    for m in features.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn(n, generator=g))
            # floored: a channel that barely varies would have BatchNorm scale float32
            # rounding up ~300x, and the agreement below would measure that instead
            m.running_var.clamp_(min=1e-3).mul_(torch.empty(n).uniform_(0.8, 1.25, generator=g))
state = {{"features." + k: v for k, v in features.state_dict().items()}}
torch.save(state, {path!r})
"""


@pytest.fixture(scope="session")
def path_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "mobilenetv2_features.pt"
    run_python(_MAKE_WEIGHTS.format(path=str(path)))
    return str(path)


def run_python(code: str, timeout: int = 300, **env: str) -> str:
    """`python -c CODE` from the repository root (one framework per process); its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# one thread per framework process: the machine's cores are shared
THREADS = {
    "keras": "import tensorflow as tf\n"
             "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
             "tf.config.threading.set_inter_op_parallelism_threads(1)\n",
    "torch": "import torch\ntorch.set_num_threads(1)\n",
}


# ----------------------------------------------------------------------------- registry

_BUILD_ALL = """
import json, numpy as np
from common.transfer import BACKBONES, TransferSpec
{threads}
from {fw}_impl.transfer import TransferModel
{blocks}
out = {{}}
for name in BACKBONES:
    spec = TransferSpec(name, "none", 32)
    model = TransferModel(spec, (32, 32, 3), num_classes=10, seed=0, shared_init=True)
    out[name] = {{"params": model.params, "blocks": count_blocks(name, model),
                 "top_block_trainable": model.freeze(1), "feature_dim": feature_dim(model)}}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def built() -> dict[str, dict]:
    # Keras: the feature model's output shape (its predict would compile a graph per backbone,
    # 5 s in all; test_two_phases_end_to_end_report_feature_agreement runs features())
    keras = _BUILD_ALL.format(fw="keras", threads=THREADS["keras"], blocks=(
        "from keras_impl.transfer import block_index\n"
        "def count_blocks(name, model):\n"
        "    return len({block_index(name, l.name) for l in model.base.layers if l.weights})\n"
        "def feature_dim(model):\n    return model.feature_model.output_shape[-1]"))
    torch = _BUILD_ALL.format(fw="torch", threads=THREADS["torch"], blocks=(
        "def count_blocks(name, model):\n    return len(model.net.base)\n"
        "def feature_dim(model):\n"
        "    return model.features(np.zeros((2, 32, 32, 3), np.float32)).shape[1]"))
    return {fw: json.loads(run_python(code).strip().splitlines()[-1])
            for fw, code in (("keras", keras), ("torch", torch))}


def test_the_block_table_counts_every_block():
    """common.transfer's stage table (which both frameworks cut their bases by) adds up to each
    staged backbone's block count: the stem, every unit, the transitions between stages."""
    staged = [b for b in BACKBONES.values() if b.stages]
    assert {b.name for b in staged} == {"resnet50", "resnet50v2", "densenet121"}
    for b in staged:
        first = stage_first_blocks(b)
        assert list(first) == [2, 3, 4, 5] and first[2] == 1
        assert first[5] + b.stages[-1] == b.blocks, b.name


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_with_the_registered_blocks(built, name):
    b = BACKBONES[name]
    for fw in ("keras", "torch"):
        facts = built[fw][name]
        assert facts["blocks"] == b.blocks, (fw, facts)
        assert facts["feature_dim"] == b.feature_dim, (fw, facts)
        assert 0 < facts["top_block_trainable"] < facts["params"]
    # densenet121 and the resnet50v2 twin: equal too; Keras' ResNet50 is v1 with conv biases
    # (documented, not equal)
    if name != "resnet50":
        assert built["keras"][name]["params"] == built["torch"][name]["params"]
        assert (built["keras"][name]["top_block_trainable"]
                == built["torch"][name]["top_block_trainable"])


def test_torch_front_augments_in_training_only():
    """The augmentation modules run before the preprocessing, in training mode only, stay in
    training mode while the base is held in eval, and never touch `features()`."""
    out = run_python(THREADS["torch"] + """
import json, numpy as np, torch
from common.transfer import TransferSpec
from torch_impl.transfer import TransferModel

class Blank(torch.nn.Module):  # an 'augmentation' that blanks the image, in training only
    seen = []
    def forward(self, x):
        Blank.seen.append(tuple(x.shape))
        return torch.zeros_like(x) if self.training else x

spec = TransferSpec("mobilenetv2", "none", 32, dropout=0.0)
model = TransferModel(spec, (20, 20, 1), num_classes=3, seed=0, shared_init=True,
                      front=[Blank()])
x = np.random.default_rng(0).random((2, 20, 20, 1), dtype=np.float32)
blank = np.zeros_like(x)
t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)
net = model.net.train()
modes = [net.front[0].training, net.base.training, net.head.training]
with torch.no_grad():
    trained = net(t(x))
    features = model.features(x)  # sets eval
    evaluated = net(t(x))
    reference = net(t(blank))
print(json.dumps({"modes": modes, "seen": Blank.seen,
                  "train_is_blank": bool(torch.allclose(trained, reference)),
                  "eval_differs": float((evaluated - reference).abs().max()),
                  "features_of_x": bool(np.allclose(features, model.features(x))),
                  "features_differ_from_blank":
                      float(np.abs(features - model.features(blank)).max())}))
""")
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["modes"] == [True, False, True]
    assert facts["seen"][0] == [2, 1, 20, 20]  # before the preprocessing (no resize, gray)
    assert len(facts["seen"]) == 3  # forward only: features() bypasses the front
    assert facts["train_is_blank"]
    assert facts["eval_differs"] > 0
    assert facts["features_differ_from_blank"] > 0


# ----------------------------------------------------------------------------- conversion

_CONVERT = THREADS["torch"] + """
from common.transfer import TransferSpec
from torch_impl.transfer import convert_path_weights
print(convert_path_weights(TransferSpec("mobilenetv2", {path!r}), {cache!r}))
"""

# Keras' ResNet50V2 ImageNet file, made here with random weights (no download): as for the
# MobileNetV2 state dict above, BatchNorm statistics are those of the net's own activations on
# smooth images (momentum 0: one training-mode call sets them), then perturbed and floored;
# gamma and beta random. Each residual branch's last conv is scaled by 0.25 first: a random
# pre-activation ResNet's branches are as large as its identity path, which makes it chaotic
# (float32 rounding grows through the 16 units until PyTorch's own float32 and float64 features
# differ by up to 3e-4); with smaller branches, as in trained ones, that noise is ~1e-5 and a
# 1e-4 bound can tell a wrong graph from rounding. Saved in the legacy .h5 layout Keras ships, at
# the name keras.applications fetches, where --no-download finds it. Then, as compare.py does
# before a run: Keras' pooled features from that file and the conversion for the PyTorch twin.
_MAKE_KERAS_RESNET50V2 = THREADS["keras"] + """
import h5py, keras, numpy as np
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
from common.transfer import TransferSpec
from keras_impl.transfer import Preprocess, TransferModel, convert_imagenet_weights
keras.utils.set_random_seed(0)
rng = np.random.default_rng(1)
spec = TransferSpec("resnet50v2", "imagenet", 32)
base = keras.applications.ResNet50V2(input_shape=(32, 32, 3), include_top=False, weights=None)
for layer in base.layers:
    if layer.name.endswith("_3_conv"):
        layer.kernel.assign(layer.kernel * 0.25)
    elif isinstance(layer, keras.layers.BatchNormalization):
        n = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
        layer.beta.assign(rng.normal(0.5, 0.2, n).astype(np.float32))
        layer.momentum = 0.0
calibration = np.kron(rng.random((32, 4, 4, 3)), np.ones((1, 8, 8, 1))).astype(np.float32)
base(Preprocess(32, spec.preprocessing("keras"))(calibration), training=True)
for layer in base.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        n = layer.gamma.shape[0]
        var = np.maximum(layer.moving_variance.numpy(), 1e-3) * rng.uniform(0.8, 1.25, n)
        layer.moving_mean.assign(layer.moving_mean.numpy()
                                 + 0.1 * np.sqrt(var) * rng.standard_normal(n))
        layer.moving_variance.assign(var.astype(np.float32))
with h5py.File({h5!r}, "w") as f:
    save_weights_to_hdf5_group(f, base)
model = TransferModel(spec, (32, 32, 3), num_classes=1, seed=0, shared_init=False,
                      download=False)  # loads the file as keras.applications does
np.save({features!r}, model.features(np.load({images!r})))
print(convert_imagenet_weights(spec, False, {cache!r}))
"""


@pytest.fixture(scope="session")
def keras_resnet50v2(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("resnet50v2")
    (tmp / "keras-home" / "models").mkdir(parents=True)
    paths = {"keras_home": str(tmp / "keras-home"), "cache": str(tmp / "cache"),
             "images": str(tmp / "images.npy"), "features": str(tmp / "keras.npy"),
             "h5": str(tmp / "keras-home" / "models" / KERAS_IMAGENET_FILES["resnet50v2"][0])}
    rng = np.random.default_rng(0)
    np.save(paths["images"], np.kron(rng.random((6, 4, 4, 3)), np.ones((1, 8, 8, 1))
                                     ).astype(np.float32))
    out = run_python(_MAKE_KERAS_RESNET50V2.format(**paths), KERAS_HOME=paths["keras_home"])
    assert out.strip().splitlines()[-1] == str(converted_imagenet_path("resnet50v2",
                                                                       paths["cache"]))
    return paths


def test_resnet50v2_twin_computes_keras_function(keras_resnet50v2):
    """Keras' ResNet50V2 weights, converted by a Keras process, loaded into the PyTorch twin:
    the pooled features agree to float32 noise (a twin that differed, e.g. padding its stem
    max-pool with -inf like torch's MaxPool2d(padding=1), is off by ~0.1). A file missing a
    layer is one line naming it."""
    paths = keras_resnet50v2
    facts = json.loads(run_python(THREADS["torch"] + f"""
import json, numpy as np, torch
from common.errors import UserError
from common.transfer import TransferSpec, converted_imagenet_path
from torch_impl.transfer import ResNet50V2, TransferModel, load_imagenet_arrays
spec = TransferSpec("resnet50v2", "imagenet", 32)
model = TransferModel(spec, (32, 32, 3), num_classes=1, seed=0, shared_init=False,
                      cache_dir={paths["cache"]!r})
images = np.load({paths["images"]!r})
np.save({paths["features"] + ".torch.npy"!r}, model.features(images))
with torch.no_grad():  # the same twin in float64: the float32 rounding, for the message
    exact = model.net.double().features(torch.from_numpy(images).double().permute(0, 3, 1, 2))
np.save({paths["features"] + ".torch64.npy"!r}, exact.numpy())
path = converted_imagenet_path("resnet50v2", {paths["cache"]!r})
arrays = dict(np.load(path))
del arrays["post_bn.gamma"], arrays["post_bn.beta"]
del arrays["post_bn.moving_mean"], arrays["post_bn.moving_variance"]
np.savez({paths["cache"] + "/partial.npz"!r}, **arrays)
try:
    load_imagenet_arrays(ResNet50V2(), {paths["cache"] + "/partial.npz"!r})
    error = None
except UserError as err:
    error = str(err)
print(json.dumps({{"source": model.weights_source, "error": error,
                  "preprocessing": model.preprocessing.name}}))
""").strip().splitlines()[-1])
    keras, torch = np.load(paths["features"]), np.load(paths["features"] + ".torch.npy")
    assert keras.shape == torch.shape == (6, 2048)
    # features of the size of trained ones, depending on the image: not zeros or a constant
    scale = np.abs(torch)
    assert 0.5 < scale.max() < 50 and scale.mean() > 0.05, (scale.max(), scale.mean())
    assert torch.std(axis=0).mean() > 0.05 * scale.mean()
    agreement = feature_agreement(keras, torch)
    rounding = float(np.abs(torch - np.load(paths["features"] + ".torch64.npy")).max())
    print(f"resnet50v2, Keras vs the PyTorch twin: {agreement}; the twin's float32 vs float64: "
          f"{rounding:.2e}")
    assert agreement["max_abs_diff"] < 1e-4, (agreement, rounding)
    assert "converted by Keras" in facts["source"] and facts["preprocessing"].startswith("keras tf")
    assert facts["error"] and "\n" not in facts["error"] and "post_bn" in facts["error"]


def test_resnet50v2_imagenet_end_to_end(tmp_path, keras_resnet50v2, built):
    """`--weights imagenet` for resnet50v2 on PyTorch: compare.py converts Keras' file (here the
    random one, found with --no-download) in a Keras process, and the twin trains both phases
    from it. (Keras loading its own file: the keras_resnet50v2 fixture; the same parameter
    count on both sides: `built`.)"""
    args = ["resnet50v2" if a == "mobilenetv2" else "torch" if a == "both" else a for a in TINY]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "compare.py"), *args,
         "--weights", "imagenet", "--no-download", "--fine-tune-epochs", "1",
         "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_HOME": keras_resnet50v2["keras_home"]})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert converted_imagenet_path("resnet50v2", str(tmp_path / "cache")).is_file()
    (record,) = records_of(run_dirs(tmp_path / "out")[0])
    assert record.framework == "torch"
    assert [h["phase"] for h in record.history] == ["head", "fine-tune"]
    assert record.transfer["preprocessing"]["name"].startswith("keras tf")
    assert KERAS_IMAGENET_FILES["resnet50v2"][0] in record.transfer["weights_source"]
    assert "converted by Keras" in record.transfer["weights_source"]
    assert record.params == built["keras"]["resnet50v2"]["params"]


def test_convert_path_weights_saves_the_tensors_in_order(tmp_path, path_weights):
    """In one PyTorch process: the conversion, PyTorch's own view of the file beside it, and a
    second conversion, which finds the first one's file and leaves it alone."""
    cache = str(tmp_path / "cache")
    facts = json.loads(run_python(_CONVERT.format(path=path_weights, cache=cache) + f"""
import json, os, numpy as np, torch
out = str(convert_path_weights(TransferSpec("mobilenetv2", {path_weights!r}), {cache!r}))
os.utime(out, ns=(0, 0))  # a rewrite would set it to now
again = str(convert_path_weights(TransferSpec("mobilenetv2", {path_weights!r}), {cache!r}))
state = torch.load({path_weights!r}, map_location="cpu", weights_only=True)
arrays = np.load(out)
print(json.dumps({{"out": out, "again": again, "unchanged": os.stat(out).st_mtime_ns == 0,
                  "torch_keys": list(state), "npz_keys": list(arrays.files),
                  "equal": all(arrays[k].dtype == v.numpy().dtype
                               and np.array_equal(arrays[k], v.numpy())
                               for k, v in state.items())}}))
""").strip().splitlines()[-1])
    out = facts["out"]
    assert out == facts["again"] == str(converted_weights_path(path_weights, cache))
    assert facts["unchanged"]  # converted once: the second call found the file
    assert facts["npz_keys"] == facts["torch_keys"] and facts["equal"]
    arrays = np.load(out)
    assert len(arrays.files) == BACKBONES["mobilenetv2"].path_tensors
    first = arrays.files[0]
    assert first == "features.0.0.weight" and arrays[first].shape == (32, 3, 3, 3)
    # the fixture's BatchNorm variances lie far from 1, where the epsilon conversion matters
    variances = np.concatenate([arrays[k] for k in arrays.files if k.endswith("running_var")])
    assert np.mean(np.abs(np.log(variances)) > np.log(2)) > 0.5


def test_bad_weights_files_are_one_user_error_line(tmp_path):
    few, garbage = tmp_path / "few.pt", tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file" * 100)
    errors = json.loads(run_python(THREADS["torch"] + f"""
import json, torch
from common.errors import UserError
from common.transfer import TransferSpec
from torch_impl.transfer import convert_path_weights
torch.save({{"a": torch.ones(2), "b": torch.zeros(3)}}, {str(few)!r})
errors = []
for path in ({str(few)!r}, {str(garbage)!r}):
    try:
        convert_path_weights(TransferSpec("mobilenetv2", path), {str(tmp_path / "cache")!r})
        errors.append(None)
    except UserError as err:
        errors.append(str(err))
print(json.dumps(errors))
""").strip().splitlines()[-1])
    for error in errors:
        assert error is not None and "\n" not in error, errors
    assert str(few) in errors[0] and "2 tensors" in errors[0] and "312" in errors[0]
    assert str(garbage) in errors[1] and "cannot read" in errors[1]
    assert not (tmp_path / "cache" / "weights").exists() or not any(
        (tmp_path / "cache" / "weights").iterdir())


def test_converted_weights_path_follows_the_file(tmp_path, monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    monkeypatch.setenv("DLCV_CACHE_DIR", str(tmp_path / "default"))
    first = converted_weights_path(str(weights), None)
    assert first.parent == tmp_path / "default" / "weights"
    assert first.name.startswith("w-") and first.suffix == ".npz"
    assert re.fullmatch(r"w-[0-9a-f]{16}\.npz", first.name)
    assert converted_weights_path(str(weights), None) == first
    assert converted_weights_path(str(weights), str(tmp_path / "c")).parent == (
        tmp_path / "c" / "weights")
    weights.write_bytes(b"xy")  # another size (and mtime): another file to convert
    assert converted_weights_path(str(weights), None) != first


# ----------------------------------------------------------------------------- fetching

_FETCH = """
import json
from common.errors import UserError
from common.transfer import TransferSpec
from {fw}_impl.transfer import fetch_imagenet
try:
    print(json.dumps(fetch_imagenet(TransferSpec("mobilenetv2", "imagenet", 96), False)))
except UserError as err:
    print(json.dumps("error: " + str(err)))
"""


def test_fetch_imagenet_finds_a_file_placed_by_hand(tmp_path):
    """Offline, the cache file named by the one-line error (test below) is the one used: a file
    placed there by hand is found without any network."""
    keras_home = tmp_path / "keras-home"
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    (keras_home / "models").mkdir(parents=True)
    (keras_home / "models" / name).write_bytes(b"placed")
    found = json.loads(run_python(_FETCH.format(fw="keras"), KERAS_HOME=str(keras_home))
                       .strip().splitlines()[-1])
    assert found == str(keras_home / "models" / name)


# ----------------------------------------------------------------------------- the CLI


def test_imagenet_offline_is_one_line_before_any_run(tmp_path):
    keras_home, torch_home = tmp_path / "keras-home", tmp_path / "torch-home"
    keras_home.mkdir()
    torch_home.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "compare.py"), "--task", "digits", "--pipeline", "transfer",
         "--backbone", "mobilenetv2", "--weights", "imagenet", "--no-download",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KERAS_HOME": str(keras_home), "TORCH_HOME": str(torch_home)})
    line = one_line_error(proc)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in line
    assert str(keras_home / "models") in line
    assert "mobilenet_v2-b0353104.pth" in line and str(torch_home / "hub" / "checkpoints") in line
    assert run_dirs(tmp_path / "out") == []


def test_resnet50v2_imagenet_offline_names_keras_file(tmp_path):
    """PyTorch runs Keras' ResNet50V2 weights: offline, also --framework torch names Keras'
    file and folder, in one line, before anything is written."""
    keras_home = tmp_path / "keras-home"
    keras_home.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "compare.py"), "--task", "digits", "--framework", "torch",
         "--pipeline", "transfer", "--backbone", "resnet50v2", "--weights", "imagenet",
         "--no-download", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KERAS_HOME": str(keras_home)})
    line = one_line_error(proc)
    assert KERAS_IMAGENET_FILES["resnet50v2"][0] in line and str(keras_home / "models") in line
    assert "--weights PATH" not in line  # mobilenetv2 only
    assert run_dirs(tmp_path / "out") == []


@pytest.mark.parametrize("args,expected", [
    (["--backbone", "vgg99"], ["vgg99", *BACKBONES]),
    (["--backbone", "resnet50", "--weights", "PATH"], ["--weights", "mobilenetv2"]),
    (["--weights", "missing.pt"], ["missing.pt", "no such file"]),
    (["--weights", "none", "--fine-tune-layers", "99"], ["--fine-tune-layers", "19"]),
    (["--weights", "none", "--image-size", "16"], ["--image-size", "32"]),
])
def test_bad_transfer_flags_are_one_line(tmp_path, capsys, path_weights, args, expected):
    args = [path_weights if a == "PATH" else a for a in args]
    line = main_error(capsys, "--task", "digits", "--pipeline", "transfer", *args,
                      "--out", str(tmp_path))
    assert all(e in line for e in expected), line
    assert run_dirs(tmp_path) == []


def test_transfer_flags_need_the_transfer_pipeline(tmp_path, capsys):
    line = main_error(capsys, "--task", "digits", "--backbone", "resnet50", "--out", str(tmp_path))
    assert "--backbone" in line and "--pipeline transfer" in line


def test_spec_round_trips_through_the_job_file():
    from common.config import RunConfig
    from common.optim import resolve_optimizer
    from common.specs import get_preset

    cfg = RunConfig(task="digits", model="mobilenetv2", arch=get_preset("digits_cnn"),
                    optimizer=resolve_optimizer("sgd"), epochs=1, batch_size=8,
                    pipeline="transfer", transfer=TransferSpec("mobilenetv2", "none", 32))
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ----------------------------------------------------------------------------- end to end

TINY = ["--task", "digits", "--framework", "both", "--pipeline", "transfer",
        "--backbone", "mobilenetv2", "--epochs", "1", "--train-size", "64", "--val-size", "64",
        "--image-size", "32", "--threads", "1", "--no-plots"]


def test_two_phases_end_to_end_report_feature_agreement(tmp_path, path_weights):
    """Both phases in both frameworks from the same PATH weights: the head on features computed
    once, then fine-tuning on images at a tenth of the lr; the report's feature agreement (the
    padding used: torchvision's, within float32 noise)."""
    proc = run_compare(*TINY, "--weights", path_weights, "--fine-tune-epochs", "1",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = run_dirs(tmp_path)[0]
    records = {r.framework: r for r in records_of(run_dir)}
    assert set(records) == {"keras", "torch"}
    feature_dim = BACKBONES["mobilenetv2"].feature_dim
    for r in records.values():
        assert [h["phase"] for h in r.history] == ["head", "fine-tune"]
        assert [h["epoch"] for h in r.history] == [1, 2]
        t = r.transfer
        assert t["features_cached"] and [p["inputs"] for p in t["phases"]] == [
            "cached features", "images"]
        head, fine = t["phases"]
        assert head["trainable_params"] == feature_dim * 10 + 10 < fine["trainable_params"] < r.params
        assert fine["lr"] == pytest.approx(r.config.optimizer["lr"] * 0.1)
        assert r.train_seconds >= sum(r.epoch_seconds)
        assert t["preprocessing"]["name"] == "torchvision mean/std"  # the file's own
        assert (run_dir / t["feature_probe"]).is_file()
    table = [line for line in proc.stdout.strip().splitlines()[-4:] if line.startswith("|")]
    assert len(table) == 4 and "features computed once" in proc.stdout
    report = (run_dir / "report.md").read_text()
    assert "## Transfer learning" in report and "Feature agreement" in report
    used = next(line for line in report.splitlines() if "(used)" in line)
    assert "torchvision's" in used, used  # matching padding is the default with PATH weights
    assert float(re.search(r"max abs difference ([0-9.e+-]+)", used)[1]) < 1e-4, used


def test_check_parity_transfer_prints_the_feature_agreement(tmp_path, path_weights):
    """--check-parity --pipeline transfer: each framework's pooled features of the first test
    images from the same converted weights (PyTorch loads the file with torch.load; Keras the
    arrays PyTorch saved for it), with the padding used (matching: within float32 noise) and
    Keras' own (not). It writes nothing, so --out is refused (checked in test_inputs)."""
    proc = run_compare("--task", "digits", "--pipeline", "transfer", "--weights", path_weights,
                       "--image-size", "32", "--threads", "1", "--check-parity",
                       "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "max abs difference" in line]
    assert len(lines) == 2, proc.stdout
    used, other = (next(line for line in lines if ("(used)" in line) == u) for u in (True, False))
    assert "torchvision's" in used
    assert float(re.search(r"max abs difference ([0-9.e+-]+)", used)[1]) < 1e-4, used
    assert float(re.search(r"max abs difference ([0-9.e+-]+)", other)[1]) > 1e-2, other
    # the random net's features have the size of trained ones, so the agreement above is not
    # that of zeros or of saturated units
    assert 0.5 < float(re.search(r"largest feature ([0-9.]+)", used)[1]) < 20, used
    assert not (tmp_path / "out").exists()
