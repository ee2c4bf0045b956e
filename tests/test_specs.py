"""Architecture files (common/specs.py): the format, its one-line errors, the derived shapes, the
shipped presets, the command-line knobs on them, and a student's own file end to end."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest
from conftest import main_error, records_of, run_compare, run_dirs

from common.errors import UserError
from common.init import initial_weights
from common.optim import OPTIMIZERS, resolve_optimizer
from common.knobs import (conv_batch_norm, conv_filters, customize, dense_dropout, hidden_dense,
                          parse_filters)
from common.specs import (LAYER_TYPES, PRESETS, ArchSpec, count_params, forward_flops, get_arch,
                          get_preset, layer_table, load_arch_file)
from common.study_settings import parse_study

# A student's file: a size-keeping pool, dropout after a conv block, batch norm after a dense
# layer (without activation: no bias there), another activation, and comments.
OWN = """\
# my first architecture file
description = "size-keeping pool, dropout after a conv block, batch norm after a dense layer"
input = [8, 8, 1]

[[layer]]
type = "conv"
filters = 8              # 3x3, stride 1, 'same', ReLU

[[layer]]
type = "maxpool"
size = 3
stride = 1
padding = "same"         # 8x8 stays 8x8

[[layer]]
type = "conv"
filters = 12
activation = "elu"

[[layer]]
type = "maxpool"         # 2x2: 8x8 -> 4x4

[[layer]]
type = "dropout"
rate = 0.25

[[layer]]
type = "flatten"

[[layer]]
type = "dense"
units = 32
activation = "linear"

[[layer]]
type = "batchnorm"

[[layer]]
type = "activation"
activation = "gelu"
"""


def write(tmp_path, text: str, name: str = "net.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(spec: ArchSpec, shape=(8, 8, 1)):
    return [(r.kind, r.out_shape, r.params) for r in layer_table(spec, shape, 10)
            if r.kind != "activation"]


# ----------------------------------------------------------------------------- the presets

# sha256 of the shared initial weights (seed 0) as the code before architecture files drew them
# (commit 218a814, ConvBlock specs): the presets must keep their results bit for bit.
OLD_WEIGHTS = {
    ("digits_cnn", ""): "3d9f00d75850dff6", ("digits_cnn", "+bn"): "843559d43a7c53d6",
    ("digits_cnn", "+knobs"): "f644d628fb940025",
    ("mnist_cnn", ""): "e37cb6de19734139", ("mnist_cnn", "+bn"): "dc662a40baf7b591",
    ("mnist_cnn", "+knobs"): "3754a0f6900b4334",
    ("cifar10_cnn", ""): "c997291721df6d9c", ("cifar10_cnn", "+bn"): "2a0a0deea32dcfb7",
    ("cifar10_cnn", "+knobs"): "336a4baa5207e9fb",
}


@pytest.mark.parametrize("name,variant", list(OLD_WEIGHTS))
def test_task_presets_draw_the_same_initial_weights_as_before(name, variant):
    spec = get_preset(name)
    if variant == "+bn":
        spec = customize(spec, batch_norm=True)
    elif variant == "+knobs":
        spec = customize(spec, filters=parse_filters("8,8/16"), kernel_size=5, dense=(32, 16),
                         dropout=0.25)
    digest = hashlib.sha256()
    for layer in initial_weights(spec, spec.input_shape, 10, 0):
        for key in sorted(layer):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(layer[key]).tobytes())
    assert digest.hexdigest()[:16] == OLD_WEIGHTS[name, variant]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_reads_round_trips_and_derives_its_shapes(name):
    spec = PRESETS[name]
    assert spec.name == name and spec.description and spec.input_shape
    assert ArchSpec.from_dict(json.loads(json.dumps(asdict(spec)))) == spec  # as records keep it
    table = layer_table(spec, spec.input_shape, 10)
    assert table[-1].kind == "dense" and table[-1].out_shape == (10,)
    assert sum(r.params for r in table) == count_params(spec, spec.input_shape, 10)


@pytest.mark.parametrize("name,flatten,params", [
    ("vgg_block", 16 * 16 * 128, 1792 + 73856 + 32768 * 1024 + 1024 + 10250),
    ("vgg_block_wide", 16 * 16 * 128, 3584 + 147584 + 32768 * 4096 + 4096 + 40970),
    ("vgg_block_2fc", 16 * 16 * 128, 1792 + 73856 + 33555456 + 1049600 + 10250),
    ("tutorial_cnn", 16 * 16 * 18, 504 + 4608 * 64 + 64 + 650),
    ("tutorial_cnn_keep", 32 * 32 * 18, 504 + 18432 * 64 + 64 + 650),
    ("tutorial_cnn_4conv", 32 * 32 * 18, 504 + 10432 + 73856 + 20754 + 18432 * 64 + 64 + 650),
    ("whale_cnn", 12 * 12 * 64, 0),
    ("mlp", 32 * 32 * 3, 3072 * 512 + 512 + 512 * 512 + 512 + 5130),
])
def test_lab_presets_have_the_labs_shapes(name, flatten, params):
    spec = PRESETS[name]
    table = layer_table(spec, spec.input_shape, 10)
    assert next(r for r in table if r.kind == "flatten").out_shape == (flatten,)
    if params:  # hand counts: conv k*k*in*out + out, dense in*out + out
        assert count_params(spec, spec.input_shape, 10) == params


def test_lab_presets_record_the_labs_setting():
    assert all(f in PRESETS["vgg_block"].description for f in ("63.6%", "67.9%", "69.2%", "Adam"))
    assert dense_dropout(PRESETS["vgg_block_2fc_dropout"]) == 0.65
    whale = [r.kind for r in layer_table(PRESETS["whale_cnn"], (100, 100, 3), 4)]
    assert whale.count("batchnorm") == 3 and whale.count("dropout") == 1
    # its batch norms follow a pool or a ReLU: every conv and dense layer keeps its bias
    assert all(r.bias for r in layer_table(PRESETS["whale_cnn"], (100, 100, 3), 4)
               if r.kind in ("conv", "dense"))


def test_a_preset_on_another_input_size_works_or_says_which_layer_fails():
    assert count_params(PRESETS["whale_cnn"], (32, 32, 3), 5) > 0  # 32 -> 16 -> 8 -> 4
    with pytest.raises(UserError) as err:
        layer_table(PRESETS["whale_cnn"], (4, 4, 1), 10)  # 4 -> 2 -> 1: the third pool fails
    assert "layer 11 (maxpool 2): input 1x1 is smaller than the 2x2 window" in str(err.value)


# ----------------------------------------------------------------------------- the format


def test_own_file_derives_shapes_and_the_bias_rule(tmp_path):
    spec = load_arch_file(write(tmp_path, OWN))
    assert spec.name == "net" and spec.input_shape == (8, 8, 1)
    assert rows(spec) == [
        ("conv", (8, 8, 8), 80), ("maxpool", (8, 8, 8), 0),  # size kept
        ("conv", (8, 8, 12), 876), ("maxpool", (4, 4, 12), 0), ("dropout", (4, 4, 12), 0),
        ("flatten", (192,), 0),
        ("dense", (32,), 192 * 32 + 32),  # a bias, as the student's own model has
        ("batchnorm", (32,), 64), ("dense", (10,), 330)]
    acts = [r.activation for r in layer_table(spec, (8, 8, 1), 10) if r.kind == "activation"]
    assert acts == ["relu", "elu", "gelu"]
    assert get_arch(str(tmp_path / "net.toml")) == spec


def test_bias_batch_norm_settings_spatial_dropout_and_integer_padding(tmp_path):
    """What students write: bias = false (and its default true, as both frameworks), batch
    norm momentum/epsilon in Keras' convention, channel-wise dropout, PyTorch's integer
    padding; each parameter count is the student's model's."""
    spec = load_arch_file(write(tmp_path, """
layer = [
  { type = "conv", filters = 4, padding = 1, activation = "linear", bias = false },
  { type = "batchnorm", momentum = 0.9, epsilon = 1e-5 },
  { type = "maxpool", size = 2, padding = 1 },
  { type = "spatial_dropout", rate = 0.1 },
  { type = "avgpool", size = 3, stride = 1, padding = 1 },
  { type = "flatten" },
  { type = "dense", units = 5 },
]
""", "lab.toml"))
    table = layer_table(spec, (6, 6, 2), 3)
    assert [(r.kind, r.out_shape, r.params) for r in table if r.kind != "activation"] == [
        ("conv", (6, 6, 4), 3 * 3 * 2 * 4),  # padding 1 keeps 6x6; no bias
        ("batchnorm", (6, 6, 4), 8), ("maxpool", (4, 4, 4), 0),  # (6 + 2 - 2) // 2 + 1
        ("spatial_dropout", (4, 4, 4), 0), ("avgpool", (4, 4, 4), 0),
        ("flatten", (64,), 0), ("dense", (5,), 64 * 5 + 5), ("dense", (3,), 18)]
    bn = table[1]
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)
    for bad, problem in (('{ type = "maxpool", size = 2, padding = 2 }', "more than half"),
                         ('{ type = "conv", filters = 2, bias = 1 }', "bias must be true or"),
                         ('{ type = "batchnorm", momentum = 1.5 }', "momentum must be"),
                         ('{ type = "conv", filters = 2, padding = -1 }', "padding must be")):
        path = write(tmp_path, f"layer = [\n  {bad},\n  {{ type = \"flatten\" }},\n]\n",
                     "bad.toml")
        with pytest.raises(UserError, match=problem):
            layer_table(load_arch_file(path), (6, 6, 2), 3)
    flat = write(tmp_path, 'layer = [{ type = "flatten" }, { type = "spatial_dropout", rate = 0.1 }]',
                 "flat.toml")
    with pytest.raises(UserError, match="drops whole channels"):
        layer_table(load_arch_file(flat), (6, 6, 2), 3)


def test_inline_tables_are_the_same_file_format(tmp_path):
    inline = load_arch_file(write(tmp_path, 'layer = [\n  { type = "flatten" },  # first\n'
                                             '  { type = "dense", units = 4 },\n]\n', "a.toml"))
    tables = load_arch_file(write(tmp_path, '[[layer]]\ntype = "flatten"\n[[layer]]\n'
                                            'type = "dense"\nunits = 4\n', "a2.toml"))
    assert inline.layers == tables.layers and rows(inline)[-2] == ("dense", (4,), 260)


@pytest.mark.parametrize("layers,expected", [
    ('{ type = "conv", filters = 4, stride = 2 }', [(4, 4, 4)]),  # 'same': ceil(8 / 2)
    ('{ type = "conv", filters = 4, kernel = 5, padding = "valid" }', [(4, 4, 4)]),
    ('{ type = "avgpool", size = 3, stride = 1, padding = "same" }', [(8, 8, 1)]),
    ('{ type = "maxpool", size = 3, stride = 2, padding = "same" }', [(4, 4, 1)]),
    ('{ type = "avgpool", size = 3 }', [(2, 2, 1)]),  # stride = size, 'valid'
    ('{ type = "global_avgpool" }', []),
])
def test_conv_and_pool_shapes_follow_tensorflow(tmp_path, layers, expected):
    spec = load_arch_file(write(tmp_path, f"layer = [{layers}, {{ type = \"flatten\" }}]"
                                if "global" not in layers else f"layer = [{layers}]"))
    shapes = [r.out_shape for r in layer_table(spec, (8, 8, 1), 10)
              if r.kind not in ("activation", "flatten", "global_avgpool", "dense")]
    assert shapes == expected


@pytest.mark.parametrize("text,expected", [
    ('[[layer]]\ntype = "pool"\n', "layer 1 unknown type 'pool'; valid types: "
     + ", ".join(LAYER_TYPES)),
    ('[[layer]]\nfilters = 3\n', "layer 1 has no type; valid types: conv"),
    ('[[layer]]\ntype = "conv"\nfilter = 3\n', "layer 1 (conv): unknown key 'filter'; conv "
     "takes: filters, kernel, stride, padding, activation"),
    ('[[layer]]\ntype = "flatten"\nsize = 2\n', "layer 1 (flatten): unknown key 'size'; "
     "flatten takes: no other keys"),
    ('[[layer]]\ntype = "dense"\n', "layer 1 (dense): units is required"),
    ('[[layer]]\ntype = "conv"\nfilters = 0\n', "filters must be a positive integer, got 0"),
    ('[[layer]]\ntype = "maxpool"\npadding = "full"\n', "padding must be one of same, valid"),
    ('[[layer]]\ntype = "activation"\nactivation = "swish"\n', "activation must be one of "
     "relu, elu, leaky_relu, tanh, sigmoid, gelu, got 'swish'"),
    ('[[layer]]\ntype = "dropout"\nrate = 1.5\n', "rate must be a number in [0, 1)"),
    ('input = [8, 8]\nlayer = []\n', "input must be [height, width, channels]"),
    ('size = 3\nlayer = []\n', "unknown key 'size'; valid keys: description, input, layer"),
    ('description = "nothing"\n', "no layers: add [[layer]] tables"),
    ('[[layer]]\ntype = "conv"\nfilters = 8\nkernel = \n', "TOML syntax error: "),
])
def test_a_bad_file_is_one_line_naming_the_layer(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_arch_file(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expected in message
    if "syntax" in expected:
        assert "line 4" in message


@pytest.mark.parametrize("layers,expected", [
    ('{ type = "conv", filters = 4, kernel = 9, padding = "valid" }, { type = "flatten" }',
     "layer 1 (conv 4): input 8x8 is smaller than the 9x9 kernel"),
    ('{ type = "maxpool" }, { type = "maxpool" }, { type = "maxpool" }, { type = "maxpool" }, '
     '{ type = "flatten" }', "layer 4 (maxpool 2): input 1x1 is smaller than the 2x2 window"),
    ('{ type = "dense", units = 4 }', "layer 1 (dense 4): input is a 8x8x1 map; put a flatten"),
    ('{ type = "flatten" }, { type = "flatten" }', "layer 2 (flatten): input is already a vector"),
    ('{ type = "flatten" }, { type = "conv", filters = 2 }', "layer 2 (conv 2): input is a vector"),
    ('{ type = "conv", filters = 2 }', "the classifier needs a vector"),
])
def test_shapes_that_do_not_work_out_are_one_line(tmp_path, layers, expected):
    spec = load_arch_file(write(tmp_path, f"layer = [{layers}]"))
    with pytest.raises(UserError) as err:
        layer_table(spec, (8, 8, 1), 10)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_model_argument_is_a_preset_or_a_file(tmp_path):
    assert get_arch("mlp") is PRESETS["mlp"]
    with pytest.raises(UserError) as err:
        get_arch(str(tmp_path / "missing.toml"))
    assert "no such file" in str(err.value) and all(n in str(err.value) for n in PRESETS)


# ----------------------------------------------------------------------------- the knobs


def test_filters_follow_the_pools_and_copy_the_last_group():
    spec = customize(PRESETS["vgg_block"], filters=parse_filters("32,64/64,128"))
    assert conv_filters(spec) == ((32, 64), (64, 128))
    assert [r[1] for r in rows(spec, (32, 32, 3)) if r[0] == "maxpool"] == [(16, 16, 64),
                                                                             (8, 8, 128)]
    whale = customize(PRESETS["whale_cnn"], filters=parse_filters("8/8/8/8"))
    kinds = [s.type for s in whale.layers]  # each group copies its pool, dropout or batch norm
    assert kinds[:8] == ["conv", "maxpool", "batchnorm", "conv", "maxpool", "dropout", "conv",
                         "maxpool"] and kinds.count("batchnorm") == 4


def test_dense_dropout_and_batch_norm_knobs():
    two = PRESETS["vgg_block_2fc_dropout"]
    spec = customize(two, dense=(256, 128, 64))
    assert hidden_dense(spec) == (256, 128, 64) and dense_dropout(spec) == 0.65
    assert [s.type for s in spec.layers].count("dropout") == 1  # copies leave the dropout out
    assert dense_dropout(customize(two, dropout=0.0)) == 0.0
    assert all(s.type != "dropout" for s in customize(two, dropout=0.0).layers)
    bn = customize(PRESETS["tutorial_cnn"], batch_norm=True)  # conv (no bias) -> BN -> ReLU
    assert [r[0] for r in rows(bn, (32, 32, 3))][:2] == ["conv", "batchnorm"]
    assert conv_batch_norm(bn) and not layer_table(bn, (32, 32, 3), 10)[0].bias
    assert rows(customize(bn, batch_norm=False), (32, 32, 3)) == rows(PRESETS["tutorial_cnn"],
                                                                       (32, 32, 3))
    assert "batchnorm" not in [s.type for s in customize(PRESETS["whale_cnn"],
                                                         batch_norm=False).layers]


@pytest.mark.parametrize("knobs,expected", [
    ({"filters": ((8,),)}, "--filters: model 'mlp' has no conv layers"),
    ({"kernel_size": 5}, "--kernel-size: model 'mlp' has no conv layers"),
    ({"batch_norm": True}, "--batch-norm: model 'mlp' has no conv layers"),
])
def test_a_knob_without_a_place_in_the_model_is_one_line(knobs, expected):
    with pytest.raises(UserError, match=expected):
        customize(PRESETS["mlp"], **knobs)


def test_dropout_needs_a_hidden_dense_layer(tmp_path):
    spec = load_arch_file(write(tmp_path, 'layer = [{ type = "global_avgpool" }]'))
    with pytest.raises(UserError, match="no hidden dense layer"):
        customize(spec, dropout=0.5)


# ----------------------------------------------------------------------------- optimizers


def test_new_optimizers_are_in_the_registry_and_the_studies():
    assert resolve_optimizer("nadam") == {"name": "nadam", "lr": 1e-3, "beta_1": 0.9,
                                          "beta_2": 0.999, "epsilon": 1e-7, "l2": 0.0,
                                          "decoupled_weight_decay": 0.0}
    assert resolve_optimizer("adamax", lr=0.002)["lr"] == 0.002
    for kind in ("grid", "sweep"):
        assert parse_study(["optimizer=adam,sgd,adamax,nadam"], kind) == {
            "optimizer": ("adam", "sgd", "adamax", "nadam")}
    assert list(OPTIMIZERS)[-2:] == ["adamax", "nadam"]


# ----------------------------------------------------------------------------- end to end


def test_own_file_trains_in_both_frameworks(tmp_path):
    path = write(tmp_path, OWN)
    out = tmp_path / "out"
    proc = run_compare("--task", "digits", "--framework", "both", "--model", str(path),
                       "--epochs", "1", "--train-size", "200", "--no-plots", "--threads", "1",
                       "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = records_of(run_dirs(out)[0])
    expected = count_params(load_arch_file(path), (8, 8, 1), 10)
    assert sorted(r.framework for r in records) == ["keras", "torch"]
    for record in records:
        assert record.params == expected and record.config.arch == load_arch_file(path)
        assert 0.0 <= record.test_accuracy <= 1.0


@pytest.mark.parametrize("text,expected", [
    ('[[layer]]\ntype = "conv2d"\nfilters = 8\n', "layer 1 unknown type 'conv2d'"),
    ('layer = [{ type = "maxpool" }, { type = "maxpool" }, { type = "maxpool" }, '
     '{ type = "maxpool" }, { type = "flatten" }]\n',
     "layer 4 (maxpool 2): input 1x1 is smaller than the 2x2 window"),
])
def test_a_bad_file_stops_compare_with_one_line_and_writes_nothing(tmp_path, capsys, text,
                                                                   expected):
    path = write(tmp_path, text)
    out = tmp_path / "out"
    line = main_error(capsys, "--task", "digits", "--model", str(path), "--out", str(out))
    assert expected in line
    assert run_dirs(out) == []


def test_forward_flops_count_every_multiply_add_of_the_layers():
    """digits_cnn by hand, 2 FLOPs per multiply-add: conv 3x3 1->16 on 8x8 'same', conv 3x3
    16->32 on 8x8, 2x2 pool to 4x4x32 = 512, dense 512->64, dense 64->10."""
    by_hand = 2 * (8 * 8 * 16 * 9 * 1 + 8 * 8 * 32 * 9 * 16 + 512 * 64 + 64 * 10)
    assert forward_flops(get_preset("digits_cnn"), (8, 8, 1), 10) == by_hand
    # a 32x32 input: 16x the conv work, 16x the first dense layer's inputs
    assert forward_flops(get_preset("digits_cnn"), (32, 32, 1), 10) == 2 * (
        16 * (8 * 8 * 16 * 9 + 8 * 8 * 32 * 9 * 16) + 16 * 512 * 64 + 64 * 10)
