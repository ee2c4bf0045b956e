"""The throughput benchmark's parent side (no framework): which networks `--models` names, and
how its table turns records into rates against the peak."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT

from common.specs import PRESETS
from common.transfer import BACKBONES

spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)


def test_models_name_the_presets_the_backbones_or_both():
    assert throughput.model_names("presets") == list(PRESETS)
    backbones = throughput.model_names("transfer")
    assert backbones == [f"transfer:{b}" for b in BACKBONES]
    assert throughput.model_names("all") == list(PRESETS) + backbones
    assert throughput.model_names("mlp,transfer:vgg16") == ["mlp", "transfer:vgg16"]
    with pytest.raises(SystemExit, match="transfer:vgg19: backbones are mobilenetv2"):
        throughput.model_names("transfer:vgg19")


def row(framework: str, flops: float | None, busy: bool = False, **extra) -> dict:
    return {"model": "transfer:vgg16", "phase": "fine-tune", "image_size": 96,
            "framework": framework, "mode": "fast", "precision": "float32", "images": 192,
            "train_img_s": 100.0, "infer_img_s": 400.0, "busy": busy,
            "train_gflop_per_image": flops, **extra}


def test_a_backbone_row_takes_pytorchs_flop_count_for_its_network_and_phase(tmp_path):
    meta = {"cpu": "Test CPU", "flags": ["avx512f"], "threads": 2, "date": "2026-12-01",
            "batch_size": 64, "rounds": 2, "gflop": 400.0, "peak_gflop_s": {"float32": 200.0},
            "peak_gflop_s_by_framework": {"float32": {"keras": 200.0, "torch": 180.0}}}
    rows = [row("torch", 1.0), row("keras", None), row("keras", None, busy=True),
            row("keras", None, phase="head")]  # no PyTorch row of the head phase
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = throughput.render(tmp_path)
    assert "(a backbone: 192 images)" in text
    assert "float32 200 GFLOP/s (keras 200, torch 180)" in text
    lines = [line for line in text.splitlines() if line.startswith("| vgg16")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0][0] == "vgg16 96px, fine-tune" and cells[0][6:] == ["100.0", "50%"]
    assert cells[1][1] == "keras" and cells[1][6:] == ["100.0", "50%"]  # PyTorch's count
    assert cells[2][4:] == ["busy"] * 4
    assert cells[3][0] == "vgg16 96px, head" and cells[3][6:] == ["n/a", "n/a"]


def test_goals_give_no_ratio_verdict_where_a_framework_was_busy(tmp_path):
    def preset(model: str, framework: str, rate: float, busy: bool = False) -> dict:
        fields = {k: v for k, v in row(framework, 2.0, busy).items()
                  if k not in ("phase", "image_size")}
        return {**fields, "model": model, "train_img_s": rate}

    meta = {"peak_gflop_s": {"float32": 200.0}}
    rows = [preset("vgg_block", "torch", 80.0), preset("vgg_block", "keras", 100.0),
            preset("cifar10_cnn", "torch", 50.0), preset("cifar10_cnn", "keras", 10.0, True),
            preset("whale_cnn", "torch", 50.0, True), preset("whale_cnn", "keras", 10.0, True)]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = throughput.goals(tmp_path).splitlines()[2:]
    cells = {c[0]: c for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines)}
    assert cells["vgg_block"][2:] == ["keras fast 100 (100%); torch fast 80 (80%)", "yes",
                                      "1.25x", "yes"]
    assert cells["cifar10_cnn"][2:] == ["torch fast 50 (50%)", "no: torch", "n/a: keras busy",
                                        "n/a"]
    assert cells["whale_cnn"][2:] == ["n/a: every row busy", "n/a", "n/a: keras, torch busy",
                                      "n/a"]


def test_onednn_summary_sums_the_profiled_epochs_primitives():
    spec = importlib.util.spec_from_file_location("profile_step",
                                                  ROOT / "benchmarks" / "profile_step.py")
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    conv = ("onednn_verbose,1.0,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,"
            "forward_training,src:f32,,alg:convolution_direct,mb64_ic3oc16,{ms}")
    log = "\n".join([conv.format(ms=100.0), "PROFILE START", conv.format(ms=2.5),
                     "onednn_verbose,1.0,primitive,create:cache_miss,cpu,convolution,x,y,z,9.0",
                     conv.format(ms=1.5), "PROFILE END", conv.format(ms=50.0)])
    lines = profile_step.onednn_summary(log).splitlines()
    assert lines[0] == "oneDNN total 4.0 ms"
    assert lines[1].split() == ["4.0", "ms", "2x", "convolution", "|", "brg_conv_fwd:avx512_core",
                                "|", "forward_training", "|", "mb64_ic3oc16"]
    assert len(lines) == 2
