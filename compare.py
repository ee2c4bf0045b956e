"""Train the same CNN in Keras and PyTorch on one shared split and compare them.

    python compare.py --task cifar10 --framework both
    python compare.py report results/ --sort test_accuracy      # one table across runs

From Python (a notebook): `compare.run(task="digits", epochs=5)` takes the flags as keyword
arguments, runs exactly what the command line runs and returns the table as a DataFrame;
`compare.load("results/")` returns the table across runs that `report` prints.

Reads top to bottom: parse flags -> resolve and check every flag and combination (no I/O) ->
load the data once and check it against the configuration -> run each framework in its own
process (`python -m common.worker FRAMEWORK JOB`, common.launch) -> build the report from the
records they wrote (common.report) -> print the table last. Nothing is written before every
check has passed; every error is one line (`error: ...`) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.augment import AUGMENTATIONS, parse_augment
from common.config import DEVICES, INITS, MODES, PRECISIONS, RunConfig
from common.errors import UserError
from common.frameworks import (BOTH, NAMES_HELP, REFERENCE, check_grid_versions, installed, is_keras,
                               parse_frameworks)
from common.figures import plot_cross_run, write_figures
from common.launch import (ROOT, call_worker, command_line, forwarded_output, new_run_dir,
                           run_parity, run_worker)
from common.loop import Callbacks
from common.machine import free_cores
from common.optim import OPTIMIZERS, resolve_optimizer
from common.parity import case_to_dict, default_optimizers
from common.records import collect_records, run_records, write_json, write_text
from common.report import agreement_lines, markdown_table, parity_table, render_report
from common.report import (CONFIG_KEYS, DEFAULT_METRICS, FORMATS, METRICS, cross_run,
                           difference_lines, render_cross_run, results_csv, transfer_lines)
from common.specs import PRESETS, ArchSpec, customize, get_arch, layer_table, parse_filters
from common.splits import make_split
from common.studies import (GRID_KEYS, SWEEP_KEYS, Study, grid_study, parse_study, product,
                            study_folder, sweep_study)
from common.tasks import OWN_IMAGES, TASKS, Task, get_task, is_own_images, load_dataset
from common.data import Dataset
from common.transfer import (BACKBONES, DEFAULT_FINE_TUNE_LAYERS, DEFAULT_IMAGE_SIZE,
                             FINE_TUNE_LR_FACTOR, PADDING_KERAS, PADDING_TORCHVISION, PIPELINES,
                             PROBE_IMAGES, TransferSpec, is_path, resolve_weights,
                             torch_label)
from common.worker import Job


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UserError: one line on stderr (no usage dump) and exit
    status 2 from the command line, the same message as an exception from compare.run."""

    def error(self, message: str):
        raise UserError(f"{message} (see --help)")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _task(text: str) -> str:
    try:
        get_task(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _frameworks(text: str) -> tuple[str, ...]:
    try:
        return parse_frameworks(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _plateau(text: str) -> tuple[float, int, float]:
    try:
        factor, patience, min_lr = text.split(",")
        result = (float(factor), int(patience), float(min_lr))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FACTOR,PATIENCE,MIN_LR such as 0.1,3,1e-5, got {text!r}") from None
    if not 0 < result[0] < 1 or result[1] < 1:
        raise argparse.ArgumentTypeError("FACTOR must be in (0, 1) and PATIENCE at least 1")
    return result


class DefaultsFormatter(argparse.HelpFormatter):
    """Show a flag's default only where it has one and its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text
                or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        description="Train the same CNN in Keras 3 and PyTorch and compare accuracy, loss and time.",
        formatter_class=DefaultsFormatter,
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--task", required=True, type=_task,
                   help="dataset: digits (bundled, no download), mnist, cifar10, or your own "
                   "images: folder:PATH (one sub-folder per class, optional train/ and test/) "
                   "or csv:FILE (rows of filename,label; with --image-dir)")
    g.add_argument("--framework", default=BOTH, type=_frameworks, metavar="NAMES",
                   help="which frameworks to train, each in its own process: " + NAMES_HELP
                   + " (keras: Keras 3 on TensorFlow; keras-jax, keras-torch: Keras 3 on the "
                   "JAX and PyTorch backends; torch: PyTorch) (default: both)")
    g.add_argument("--model", metavar="PRESET|FILE.toml",
                   help="architecture: a preset (" + ", ".join(PRESETS) + ") or an architecture "
                   "file (TOML: a list of [[layer]] tables; README, 'Model presets') (default: the "
                   "task's own: " + ", ".join(f"{t}={d.model}" for t, d in TASKS.items()) + ")")
    g.add_argument("--check-parity", action="store_true",
                   help="print how closely the frameworks agree (logits, one step of every "
                   "optimizer) for the chosen model with shared weights, then stop")
    g.add_argument("--repeats", type=int, default=1,
                   help="train N seeds (seed, seed+1, ...) per framework; mean ± std and a "
                   "confidence interval for the difference")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="folder with the dataset files (offline use); default: "
                   "$DLCV_DATA_DIR, then the cache, then download")
    g.add_argument("--cache-dir", help="download and decoded-array cache; default: "
                   "$DLCV_CACHE_DIR or ~/.cache/dlcv-compare")
    g.add_argument("--no-download", action="store_true", help="never download; fail if absent")
    g.add_argument("--image-size", type=int, help="resize images to this square size (own "
                   f"data: default 32; --pipeline transfer: the backbone's input, default "
                   f"{DEFAULT_IMAGE_SIZE})")
    g.add_argument("--image-dir", help="folder of the images listed by --task csv:FILE")
    g.add_argument("--train-size", type=int, help="training examples (default: all left after "
                   "the validation set)")
    g.add_argument("--val-size", type=int, help="validation examples, split off the training "
                   "pool (default per task: " + ", ".join(
                       f"{t}={d.val_size}" for t, d in TASKS.items()) + "; own images: 10%%)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/val split "
                   "(fixed across --repeats)")
    g = p.add_argument_group("model knobs (override the preset)")
    g.add_argument("--filters", help="conv filters: ',' between convs, '/' between the groups "
                   "of convs that a pool closes, e.g. 32,64/64,128 (extra groups copy the last)")
    g.add_argument("--kernel-size", type=int, help="kernel size of every conv")
    g.add_argument("--dense", type=_int_list, help="hidden dense sizes, e.g. 256,64")
    g.add_argument("--dropout", type=float, help="dropout after the first hidden dense layer "
                   "(0: none)")
    g.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="batch norm after every conv, before its activation (--no-batch-norm: "
                   "remove every batch norm layer)")
    g = p.add_argument_group("transfer learning (--pipeline transfer)")
    g.add_argument("--pipeline", default="cnn", choices=PIPELINES,
                   help="cnn: the preset CNN; transfer: a pretrained backbone with a new head, "
                   "trained in two phases (frozen base, then fine-tuning of its top blocks)")
    g.add_argument("--backbone", choices=tuple(BACKBONES),
                   help="default mobilenetv2; " + "; ".join(
                       f"{b.name}: keras.applications.{b.keras_name} / {torch_label(b)}"
                       for b in BACKBONES.values()))
    g.add_argument("--weights", metavar="imagenet|none|PATH",
                   help="default imagenet: each framework's own ImageNet weights (its download "
                   "cache); none: random initialisation; PATH: a torchvision-format MobileNetV2 "
                   "feature state dict loaded into both frameworks (the same start)")
    g.add_argument("--fine-tune-layers", type=int, metavar="BLOCKS",
                   help=f"top blocks of the base unfrozen in phase 2 (default "
                   f"{DEFAULT_FINE_TUNE_LAYERS}; " + ", ".join(
                       f"{b.name} has {b.blocks}" for b in BACKBONES.values()) + ")")
    g.add_argument("--fine-tune-lr", type=float,
                   help=f"learning rate of phase 2 (default: --lr x {FINE_TUNE_LR_FACTOR:g})")
    g.add_argument("--fine-tune-epochs", type=int,
                   help="epochs of phase 2 (default: --epochs; 0 skips it)")
    g.add_argument("--match-padding", action=argparse.BooleanOptionalAction, default=None,
                   help="mobilenetv2: Keras pads stride-2 convs 1 px on every side like "
                   "torchvision (not bottom/right only), so both graphs compute the same "
                   "function (default: on with --weights PATH)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help="default per task: " + ", ".join(
        f"{t}={d.epochs}" for t, d in TASKS.items()))
    g.add_argument("--batch-size", type=int, help="default per task: " + ", ".join(
        f"{t}={d.batch_size}" for t, d in TASKS.items()))
    g.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default per task: " + ", ".join(
        f"{t}={d.optimizer}" for t, d in TASKS.items()))
    g.add_argument("--lr", type=float, help="learning rate (default per optimizer: " + ", ".join(
        f"{n}={hp['lr']:g}" for n, hp in OPTIMIZERS.items()) + ")")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--seed", type=int, default=0, help="weight init, epoch order, dropout")
    g.add_argument("--init", default="shared", choices=INITS,
                   help="shared: both start from the same weights; native: each framework's own")
    g.add_argument("--no-restore-best", action="store_true",
                   help="test the last epoch's weights instead of the best validation loss's")
    g.add_argument("--augment", metavar="NAMES", help="comma list of training augmentations: "
                   + ", ".join(f"{n} ({d})" for n, (_, _, d) in AUGMENTATIONS.items()))
    g.add_argument("--target-accuracy", type=float, metavar="A",
                   help="add a column: training seconds until the validation accuracy first "
                   "reached A (0-1), or 'not reached' (MLPerf's time to quality)")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation-loss improvement")
    g.add_argument("--reduce-lr-on-plateau", type=_plateau, metavar="FACTOR,PATIENCE,MIN_LR",
                   help="multiply the lr by FACTOR after PATIENCE epochs without improvement")
    g = p.add_argument_group("studies (results go to <out>/<grid|sweep>-<task>-<hash>; the "
                             "same command again resumes)")
    g.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="GridSearchCV over these values (repeat for more keys) with scikeras "
                   "and skorch, same folds, accuracy; keys: " + ", ".join(GRID_KEYS))
    g.add_argument("--cv", type=int, default=3, help="cross-validation folds of --grid")
    g.add_argument("--sweep", action="append", metavar="KEY=V1,V2",
                   help="train every configuration in each framework (repeat for the cartesian "
                   "product); inside a value '-' replaces ',' (dense=128-64); keys: "
                   + ", ".join(SWEEP_KEYS))
    g = p.add_argument_group("execution")
    g.add_argument("--threads", type=int,
                   help="CPU threads for each framework (the same for both; default: the cores "
                   "other processes leave free at start, all of them on an idle machine)")
    g.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto: the GPU wherever a framework's build can use one, else the CPU; "
                   "cuda: every framework on the GPU, or one line naming the one that cannot")
    g.add_argument("--mode", default="reference", choices=MODES,
                   help="reference: deterministic kernels, each framework's textbook settings; "
                   "fast: each framework's fastest measured settings for the device (PyTorch "
                   "channels_last, cuDNN autotuning on a GPU; non-deterministic kernels)")
    g.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="float32, or mixed precision: Keras' mixed-precision policy and "
                   "torch.autocast (mixed_float16 needs a GPU; the CPU takes mixed_bfloat16)")
    g.add_argument("--no-deterministic", action="store_true",
                   help="let the frameworks use non-deterministic kernels (and Keras XLA)")
    g.add_argument("--no-plots", action="store_true",
                   help="skip the figures (curves, confusion matrices, worst-classified images)")
    g.add_argument("--out", default=str(ROOT / "results"), help="results folder; each run "
                   "writes a sub-folder with report.md, config.json and one record per run "
                   "(default: results/ in the project)")
    return p



# ----------------------------------------------------------------------------- resolve


TRANSFER_FLAGS = ("backbone", "weights", "fine_tune_layers", "fine_tune_lr", "fine_tune_epochs",
                  "match_padding")


def transfer_from_args(args: argparse.Namespace, lr: float, epochs: int) -> TransferSpec | None:
    if args.pipeline != "transfer":
        given = [f"--{f.replace('_', '-')}" for f in TRANSFER_FLAGS if getattr(args, f) is not None]
        if given:
            raise UserError(f"{', '.join(given)} apply to --pipeline transfer only")
        return None
    backbone = args.backbone or "mobilenetv2"
    weights = resolve_weights(args.weights or "imagenet", backbone)
    match_padding = args.match_padding
    if match_padding is None:  # PATH weights promise the same start: make the graphs equal too
        match_padding = is_path(weights) and BACKBONES[backbone].padding_differs
    return TransferSpec(
        backbone=backbone, weights=weights,
        image_size=DEFAULT_IMAGE_SIZE if args.image_size is None else args.image_size,
        fine_tune_layers=(DEFAULT_FINE_TUNE_LAYERS if args.fine_tune_layers is None
                          else args.fine_tune_layers),
        fine_tune_lr=lr * FINE_TUNE_LR_FACTOR if args.fine_tune_lr is None else args.fine_tune_lr,
        fine_tune_epochs=epochs if args.fine_tune_epochs is None else args.fine_tune_epochs,
        match_padding=match_padding,
    )


def config_from_args(args: argparse.Namespace, pool_size: int | None = None) -> RunConfig:
    """The one RunConfig the flags describe. Own images validate 10% of their training pool by
    default: without `pool_size` (before the data is loaded) a placeholder of 1 stands in, so
    every other check still runs before any I/O."""
    task = get_task(args.task)
    val_size = args.val_size
    if val_size is None:
        val_size = task.val_size if task.val_size is not None else max(1, (pool_size or 10) // 10)
    model = args.model or task.model
    arch = customize(
        get_arch(model),
        filters=parse_filters(args.filters) if args.filters else None,
        kernel_size=args.kernel_size, dense=args.dense, dropout=args.dropout,
        batch_norm=args.batch_norm,
    )
    optimizer = resolve_optimizer(args.optimizer or task.optimizer, args.lr, args.momentum)
    epochs = task.epochs if args.epochs is None else args.epochs
    transfer = transfer_from_args(args, optimizer["lr"], epochs)
    if transfer:  # the record holds only what is built: the backbone and head (cfg.transfer)
        arch = ArchSpec(name=transfer.backbone, layers=(),
                        description="a pretrained backbone with a new head: see transfer")
    return RunConfig(
        task=args.task, model=transfer.backbone if transfer else model, arch=arch,
        optimizer=optimizer, epochs=epochs,
        batch_size=task.batch_size if args.batch_size is None else args.batch_size,
        seed=args.seed, split_seed=args.split_seed,
        train_size=args.train_size,
        val_size=val_size,
        restore_best=not args.no_restore_best, init=args.init,
        augment=parse_augment(args.augment),
        deterministic=not (args.no_deterministic or args.mode == "fast"), mode=args.mode,
        precision=args.precision, threads=args.threads, device=args.device,
        data_dir=args.data_dir, cache_dir=args.cache_dir, download=not args.no_download,
        image_size=args.image_size, image_dir=args.image_dir,
        pipeline=args.pipeline, transfer=transfer,
    )


@dataclass(frozen=True)
class Plan:
    """Everything an invocation will do, resolved and checked before any data is read."""

    command: str
    frameworks: tuple[str, ...]
    config: RunConfig  # the run's (a study's base point)
    callbacks: Callbacks
    repeats: int
    study_kind: str | None  # grid | sweep | None
    study: Study | None
    points: tuple[RunConfig, ...]  # one per study point, else (config,)
    cv: int = 0  # --grid's cross-validation folds; 0 for anything else


_UNSET = object()
CNN_FLAGS = ("model", "filters", "kernel_size", "dense", "dropout", "batch_norm")
# What --check-parity does not use: it runs one step of every optimizer on one fixed batch and
# writes nothing.
TRAINING_FLAGS = ("target_accuracy", "epochs", "batch_size", "optimizer", "lr", "momentum", "augment",
                  "early_stopping", "reduce_lr_on_plateau", "no_restore_best", "train_size",
                  "val_size", "split_seed", "no_plots", "out", "repeats")


def given_flags(argv: list[str] | None) -> set[str]:
    """The argparse destinations the user typed (also at their default value), found by parsing
    `argv` again with every default replaced by a sentinel (argparse's own abbreviations and
    `--flag=value` forms included)."""
    parser = build_parser()
    parser.set_defaults(**{a.dest: _UNSET for a in parser._actions if a.dest != "help"})
    return {dest for dest, value in vars(parser.parse_args(argv)).items() if value is not _UNSET}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def default_threads() -> int:
    """The cores other processes leave free now (common.machine.free_cores), said in one note
    line when that is fewer than all of them: threads on a taken core wait for it."""
    cores, share = free_cores()
    total = os.cpu_count() or 1
    if cores < total:
        print(f"note: other processes use {share:.0%} of the CPU; --threads defaults to the "
              f"{cores} free of {total} cores (give --threads to choose)")
    return cores


def check_flags_apply(args: argparse.Namespace, argv: list[str] | None) -> None:
    """Every typed flag the chosen task, pipeline, backbone or action would not use is refused
    (one UserError naming them and why), so a record never describes a setting that was not
    applied."""
    given = given_flags(argv)
    task = get_task(args.task)
    own = task is OWN_IMAGES
    rules = [
        (CNN_FLAGS if args.pipeline == "transfer" else (),
         "--pipeline transfer trains a pretrained backbone with its own head; these shape the CNN"),
        (("image_size",) if args.pipeline == "cnn" and not own else (),
         f"--task {args.task} has a fixed image size; --image-size resizes own images and "
         "transfer inputs"),
        (("image_dir",) if not args.task.startswith("csv:") else (),
         "--image-dir gives the images of --task csv:FILE only"),
        (("data_dir",) if args.task == "digits" or own else (),
         f"--task {args.task} reads no dataset folder"),
        (("no_download",) if (args.task == "digits" or own) and args.pipeline == "cnn" else (),
         f"--task {args.task} downloads nothing"),
        (("cv",) if not args.grid else (), "--cv sets the folds of --grid"),
        (("match_padding",) if args.pipeline == "transfer" and args.backbone
         and not BACKBONES[args.backbone].padding_differs else (),
         f"--backbone {args.backbone} pads the same way in both frameworks"),
        (TRAINING_FLAGS if args.check_parity else (),
         "--check-parity runs one step of every optimizer on one fixed batch and writes nothing"),
    ]
    for flags, why in rules:
        unused = [_flag(f) for f in flags if f in given]
        if unused:
            raise UserError(f"{', '.join(unused)} would be ignored: {why}; drop "
                            f"{'it' if len(unused) == 1 else 'them'}")


def resolve(args: argparse.Namespace, argv: list[str] | None,
            pool_size: int | None = None) -> Plan:
    """Every flag and every combination, checked; raises UserError before anything is read or
    written (called again with the pool size once own images are loaded)."""
    check_flags_apply(args, argv)
    if args.target_accuracy is not None and not 0 < args.target_accuracy <= 1:
        raise UserError("--target-accuracy A must be in (0, 1], e.g. 0.9")
    if args.threads is None:
        args.threads = default_threads()
    elif args.threads < 1:
        raise UserError("--threads must be at least 1")
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.early_stopping is not None and args.early_stopping < 1:
        raise UserError("--early-stopping PATIENCE must be at least 1")
    out = Path(args.out).expanduser().absolute()
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--out {args.out}: {blocking} is a file; give a folder (it is created "
                        "if missing)")
    study_kind = "grid" if args.grid else "sweep" if args.sweep else None
    if study_kind:
        if args.grid and args.sweep:
            raise UserError("--grid and --sweep are separate studies; give one of them")
        if args.repeats > 1 or args.check_parity:
            raise UserError("--repeats and --check-parity cannot be combined with --grid or --sweep")
        if args.pipeline == "transfer":
            raise UserError("--grid and --sweep study the CNN presets; drop --pipeline transfer")
        if args.grid and args.cv < 2:
            raise UserError("--cv must be at least 2")
        keras_elsewhere = [f for f in args.framework if is_keras(f) and f != "keras"]
        if args.grid and keras_elsewhere:
            raise UserError(f"--grid drives Keras through scikeras, which imports TensorFlow: "
                            f"it runs on keras and torch, not {', '.join(keras_elsewhere)}; "
                            "use --sweep for the other Keras backends")
        if args.grid:
            check_grid_versions(args.framework)
        if args.grid and (args.early_stopping or args.reduce_lr_on_plateau or args.augment):
            raise UserError("--grid fits have no validation set and no augmentation: drop "
                            "--early-stopping, --reduce-lr-on-plateau and --augment, or use --sweep")
    cfg = config_from_args(args, pool_size)
    if cfg.precision != "float32" and cfg.transfer:
        raise UserError(f"--precision {cfg.precision} covers the CNN pipeline; drop it or "
                        "--pipeline transfer")
    if cfg.precision != "float32" and args.grid:
        raise UserError(f"--precision {cfg.precision} covers training runs and sweeps, not "
                        "--grid; drop one")
    if args.check_parity and cfg.precision != "float32":
        raise UserError("--check-parity proves float32 agreement; drop --precision")
    if args.check_parity and cfg.transfer and not is_path(cfg.transfer.weights):
        raise UserError("--check-parity --pipeline transfer compares the frameworks' features "
                        "from the same weights: give --weights PATH")
    study = parse_study(args.grid or args.sweep, study_kind) if study_kind else None
    # A point overrides the flags it names, so defaults resolve as for one run (e.g. each
    # optimizer of a grid gets its own default lr unless --lr is given).
    points = tuple(config_from_args(argparse.Namespace(**{**vars(args), **point}), pool_size)
                   for point in product(study)) if study else (cfg,)
    callbacks = Callbacks(restore_best=cfg.restore_best, early_stopping=args.early_stopping,
                          reduce_lr=args.reduce_lr_on_plateau,
                          target_accuracy=args.target_accuracy)
    frameworks = tuple(args.framework)
    return Plan(command_line(argv), frameworks, cfg, callbacks, args.repeats, study_kind, study,
                points, args.cv if study_kind == "grid" else 0)


def check_devices(plan: Plan) -> None:
    """--device cuda: each framework's process says whether it can use a GPU, before anything
    is written (auto and cpu always work); --precision mixed_float16 also needs every framework
    on a GPU (CPUs train in bfloat16, not float16)."""
    cfg = plan.config
    if cfg.device != "cuda" and cfg.precision != "mixed_float16":
        return
    for framework in plan.frameworks:
        device = call_worker(framework, {"kind": "device", "device": cfg.device}).splitlines()[-1]
        if cfg.precision == "mixed_float16" and device != "cuda":
            raise UserError(f"--precision mixed_float16: {framework} runs on the CPU here, which "
                            "does not train in float16; use --precision mixed_bfloat16 or "
                            "float32, or a GPU")


def check_data(plan: Plan, ds: Dataset) -> None:
    """Sizes, shapes and augmentations against the loaded data: one line, nothing written."""
    shape = input_shape(ds)
    for cfg in plan.points:
        split = make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
        if plan.study_kind == "grid":
            check_cv_classes(ds.y_train[split.train], ds.class_names, plan.cv)
        if not cfg.transfer:
            layer_table(cfg.arch, shape, len(ds.class_names))
        parse_augment(",".join(cfg.augment), channels=shape[-1])


def check_cv_classes(y_train, class_names: tuple[str, ...], cv: int) -> None:
    """--grid's stratified folds need every class at least `cv` times in the training split:
    StratifiedKFold would otherwise leave a class out of some folds' training data (scikit-learn
    only warns). Raises UserError naming the classes that are too small."""
    counts = {name: int((y_train == label).sum()) for label, name in enumerate(class_names)}
    small = {name: n for name, n in counts.items() if n < cv}
    if small:
        listed = ", ".join(f"{name!r} ({n})" for name, n in small.items())
        raise UserError(f"--cv {cv}: {len(small)} classes have fewer training images than folds: "
                        f"{listed}; lower --cv or add images to those classes")


def check_weights(plan: Plan) -> None:
    """Before anything is written: PATH weights are converted once for Keras by a PyTorch
    process (which reads them with torch.load, weights_only); `imagenet` weights must be in each
    framework's cache (downloaded now unless --no-download). A backbone torchvision lacks
    (`torch_from_keras`: ResNet50V2) runs Keras' ImageNet weights on the PyTorch side too: a
    Keras process fetches them and converts them once to plain arrays for the PyTorch twin (so
    offline, the one line names Keras' file also for --framework torch)."""
    cfg, spec = plan.config, plan.config.transfer
    job = {"spec": dataclasses.asdict(spec), "cache_dir": cfg.cache_dir}
    if is_path(spec.weights):
        call_worker("torch", {"kind": "convert", **job})
    elif spec.weights == "imagenet":  # every framework's missing file named in the one line
        kinds = {framework: "fetch" for framework in plan.frameworks}
        if "torch" in kinds and spec.info.torch_from_keras:
            del kinds["torch"]
            kinds["keras"] = "convert-imagenet"  # fetches Keras' file too: one job, one line
        errors = []
        for framework, kind in kinds.items():
            try:
                call_worker(framework, {"kind": kind, **job, "download": cfg.download})
            except UserError as err:
                errors.append(str(err))
        if errors:
            raise UserError("; ".join(errors))


def input_shape(ds: Dataset) -> tuple[int, int, int]:
    return tuple(int(d) for d in ds.x_train.shape[1:])


# ----------------------------------------------------------------------------- actions


def check_parity(plan: Plan, shape: tuple[int, int, int], num_classes: int) -> None:
    """Every chosen framework and PyTorch (the reference), each in its own process, from the
    shared initial weights."""
    cfg = plan.config
    case = case_to_dict(cfg.model, cfg.arch, shape, num_classes, cfg.seed, default_optimizers())
    frameworks = (REFERENCE, *(f for f in plan.frameworks if f != REFERENCE))
    if len(frameworks) == 1:  # --framework torch: against the first installed Keras
        keras = [f for f in installed() if is_keras(f)]
        if not keras:
            raise UserError("--check-parity compares a Keras backend with PyTorch: no Keras "
                            "backend is installed (pip install -r requirements.txt)")
        frameworks = (REFERENCE, keras[0])
    result = run_parity([case], frameworks)[cfg.model]
    print("\n" + parity_table(cfg.model, cfg.task, shape, cfg.seed, result))


def check_transfer_parity(plan: Plan, ds: Dataset) -> None:
    """--check-parity --pipeline transfer: each chosen Keras framework's pooled base features of
    the first test images against PyTorch's, each framework in its own process, from the same
    (converted) weights. The framework set is --framework's, as for every command (PyTorch is
    the reference; with one framework given, the first installed other side joins it)."""
    import numpy as np  # noqa: PLC0415  (only this check needs arrays here)

    cfg, spec = plan.config, plan.config.transfer
    others = [f for f in plan.frameworks if f != REFERENCE]
    if not others:  # --framework torch: against the first installed Keras
        others = [f for f in installed() if is_keras(f)][:1]
    if not others:
        raise UserError("--check-parity compares a Keras backend with PyTorch: no Keras "
                        "backend is installed (pip install -r requirements.txt)")
    frameworks = (REFERENCE, *others)
    with tempfile.TemporaryDirectory(prefix="dlcv-probe-") as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, ds.x_test[:PROBE_IMAGES].astype(np.float32) / 255)
        features = {}
        for fw in frameworks:
            out = Path(tmp) / f"{fw}.npz"
            call_worker(fw, {"kind": "probe", "spec": dataclasses.asdict(spec),
                             "images": str(images), "out": str(out), "threads": cfg.threads,
                             "cache_dir": cfg.cache_dir})
            features[fw] = dict(np.load(out))
    used = PADDING_TORCHVISION if spec.match_padding else PADDING_KERAS
    for fw in others:
        print(f"\nFeature agreement of {spec.backbone} with {spec.weights_label()} at "
              f"{spec.image_size}px on {cfg.task}, {fw} vs {REFERENCE}:")
        for line in agreement_lines(features[fw], features[REFERENCE], used):
            print(line)


def run_comparison(plan: Plan, ds: Dataset, out: str, plots: bool) -> Path:
    """Each framework in its own process, per repeat; then the report from the records.
    Returns the run folder."""
    cfg = plan.config
    try:
        run_dir = new_run_dir(out, cfg.task)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create a run folder there ({err.strerror})") from None
    run_config = {"command": plan.command, "frameworks": list(plan.frameworks),
                  "repeats": plan.repeats, "callbacks": dataclasses.asdict(plan.callbacks),
                  "config": cfg.to_dict(), "data_notes": list(ds.notes)}
    write_json(run_dir / "config.json", run_config)

    failed = []
    try:
        # Frameworks alternate within each repeat, so slow drift of the machine hits both alike.
        for repeat in range(plan.repeats):
            for framework in plan.frameworks:
                suffix = f"-r{repeat}" if plan.repeats > 1 else ""
                job = Job(config=dataclasses.replace(cfg, seed=cfg.seed + repeat),
                          record_path=str(run_dir / f"record-{framework}{suffix}.json"),
                          repeat=repeat, callbacks=plan.callbacks)
                code = run_worker(framework, job.to_dict(),
                                  run_dir / f"job-{framework}{suffix}.json")
                if code == 130:  # the framework process was interrupted: so is the run
                    raise KeyboardInterrupt
                if code != 0:
                    failed.append(f"{framework} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")

    records = run_records(run_dir)
    if records:
        figures = write_figures(records, ds.x_test, run_dir) if plots else ""
        transfer = transfer_lines(records, run_dir)  # [] for the CNN pipeline
        write_text(run_dir / "report.md", render_report(records, run_config, transfer, figures))
        write_text(run_dir / "results.csv", results_csv(run_dir))
        print(f"\nResults: {run_dir}/report.md\n")
        for line in transfer + difference_lines(records):
            print(line)
        print(markdown_table(records))
    if failed:
        raise UserError(f"run failed: {', '.join(failed)}; completed records are in {run_dir}")
    return run_dir


def execute(argv: list[str] | None = None) -> Path | None:
    """parse -> resolve (every check) -> load the data once -> parity, study or comparison.
    Returns the folder written (None for --check-parity)."""
    args = build_parser().parse_args(argv)
    plan = resolve(args, argv)
    check_devices(plan)
    task: Task = get_task(args.task)
    cfg = plan.config
    if args.check_parity and not cfg.transfer and task is not OWN_IMAGES:
        check_parity(plan, task.input_shape, task.num_classes)  # shapes only: no data needed
        return None
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    if is_own_images(cfg.task):  # the validation size depends on the pool: resolve again
        plan = resolve(args, argv, pool_size=len(ds.x_train))
        cfg = plan.config
    check_data(plan, ds)
    for note in ds.notes:  # facts about the data the reader must know (also in report.md)
        print(f"note: {note}")
    if cfg.transfer:
        check_weights(plan)
    if args.check_parity and cfg.transfer:
        check_transfer_parity(plan, ds)
    elif args.check_parity:
        check_parity(plan, input_shape(ds), len(ds.class_names))
    elif plan.study_kind == "grid":
        folder = study_folder(args.out, "grid", cfg, plan.callbacks, plan.study, args.cv)
        grid_study(folder, plan.study, list(plan.points), plan.frameworks, args.cv, plan.command)
        return folder
    elif plan.study_kind == "sweep":
        folder = study_folder(args.out, "sweep", cfg, plan.callbacks, plan.study)
        sweep_study(folder, plan.study, list(plan.points), plan.frameworks, plan.callbacks,
                    plan.command, plots=not args.no_plots)
        return folder
    else:
        return run_comparison(plan, ds, args.out, plots=not args.no_plots)
    return None


# ----------------------------------------------------------------------------- across runs


OUT_FORMATS = {".md": "markdown", ".tex": "latex", ".csv": "csv", ".html": "html",
               ".htm": "html"}


def build_report_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="compare.py report", formatter_class=DefaultsFormatter,
        description="One table across runs: every run record (record-*.json) under the given "
        "folders, a row per run and framework (repeats pooled as mean ± std); columns: the "
        "configuration values that differ between the selected runs, then the metrics; the "
        "values they share are listed once above the table. Unreadable records (corrupt, or "
        "written by an older version) are skipped with one warning line each.",
        epilog="KEYS (for --sort, --filter, --columns): run, framework, "
        + ", ".join(CONFIG_KEYS) + " (and any optimizer setting: beta_1, epsilon, ...); "
        "metrics: " + ", ".join(METRICS) + ". Spaces or dashes may stand for '_'.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="run folders, study folders or any folder above them (searched "
                   "recursively), or record files")
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix (.md .tex "
                   ".csv .html), else markdown; latex: booktabs; csv: numbers as numbers, "
                   "shared values as columns")
    p.add_argument("--transpose", action="store_true",
                   help="runs in columns, quantities in rows")
    p.add_argument("--sort", metavar="KEY", help="order the rows by KEY (ascending; empty "
                   "values last); default: by run folder")
    p.add_argument("--descending", action="store_true", help="with --sort: largest first")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="keep the rows whose KEY is VALUE (numbers compare as numbers: "
                   "lr=1e-2 matches 0.01); repeat for more, all must match")
    p.add_argument("--columns", metavar="KEY,KEY,...",
                   help="exactly these columns, in this order (default: the run folder and "
                   "configuration keys that differ, framework, " + ", ".join(
                       DEFAULT_METRICS) + ")")
    p.add_argument("--plot", action="store_true",
                   help="also draw validation loss and accuracy per epoch (a line per run and "
                   "framework) and test accuracy against training seconds into a PNG beside "
                   "--out (or <first PATH>/crossrun.png), linked from a markdown report")
    p.add_argument("--out", metavar="FILE", help="also write the table to FILE (atomically)")
    return p


def report_command(argv: list[str], echo: bool = True) -> pd.DataFrame:
    """`compare.py report PATH...`: collect the records, build the table across runs, write
    what was asked for, print the table last (echo). Returns the table's DataFrame."""
    args = build_report_parser().parse_args(argv)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None:
        if out.is_dir():
            raise UserError(f"--out {args.out} is a folder; give a file name such as table.md")
        blocking = next((p for p in out.absolute().parents if p.exists() and not p.is_dir()),
                        None)
        if blocking is not None:
            raise UserError(f"--out {args.out}: {blocking} is a file, not a folder")
    fmt = args.format or (OUT_FORMATS.get(out.suffix.lower(), "markdown") if out else "markdown")
    found, problems = collect_records(args.paths)
    for problem in problems:  # named, never dropped silently
        print(f"warning: {problem}; skipped", file=sys.stderr, flush=True)
    if not found:
        raise UserError("no readable run record (record-*.json) under "
                        + ", ".join(args.paths))
    columns = [c for c in args.columns.split(",") if c.strip()] if args.columns else None
    table = cross_run([(f.run, f.path.name, f.record) for f in found], args.filter, args.sort,
                      args.descending, columns)
    written = []
    figure = None
    if args.plot:
        first = Path(args.paths[0]).expanduser()
        base = (out.with_suffix("") if out else
                (first if first.is_dir() else first.parent) / "crossrun")
        figure = base.with_name(base.name + ".png")
        plot_cross_run(table.labels, table.groups, figure)
        report = out if out is not None and fmt == "markdown" else base.with_name(
            base.name + (".md" if out is None or out.suffix != ".md" else "-figures.md"))
        if report != out:  # the figure is linked from a markdown report beside it
            write_text(report, render_cross_run(table, "markdown", args.transpose, figure.name))
            written.append(f"Report: {report}")
        written.insert(0, f"Figure: {figure}")
    linked = figure is not None and out is not None and fmt == "markdown"
    text = render_cross_run(table, fmt, args.transpose, figure.name if linked else None)
    if out is not None:
        write_text(out, text)
        written.append(f"Table: {out}")
    if echo:
        for line in written:
            print(line)
        print(("\n" if written else "") + text, end="")
    frame = table.frame
    frame.attrs.update(shared=table.shared, labels=table.labels, skipped=problems)
    return frame


# ----------------------------------------------------------------------------- from Python


def flags_to_argv(parser: argparse.ArgumentParser, options: dict[str, Any]) -> list[str]:
    """Keyword arguments -> the flags they mirror (`batch_size=64` -> `--batch-size 64`), so the
    same parser and checks see them. True: the flag; False: its `--no-` form (or nothing);
    None: left out; a list: the flag repeated (--grid, --sweep, --filter) or comma-joined
    (dense=(256, 64)). An unknown name reaches the parser, which names it."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []

    def given(flag: str, value: Any) -> list[str]:  # as typed; '=' keeps '-1' a value
        text = str(value)
        return [f"{flag}={text}"] if text.startswith("-") else [flag, text]

    for name, value in options.items():
        action = actions.get(name)
        flag = action.option_strings[0] if action else "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, bool) and (action is None or action.nargs == 0):
            argv += [flag] if value else []
        elif isinstance(action, argparse._AppendAction):
            for v in value if isinstance(value, (list, tuple)) else [value]:
                argv += given(flag, v)
        elif isinstance(value, (list, tuple)):
            argv += given(flag, ",".join(str(v) for v in value))
        else:
            argv += given(flag, value)
    return argv


def run(task: str, **options: Any) -> pd.DataFrame | None:
    """Run what `python compare.py --task TASK --FLAG VALUE ...` runs, from Python.

    Keyword arguments mirror the flags (`framework="both", epochs=5, batch_size=64,
    no_plots=True, sweep=["lr=0.1,0.01"]`), go through the same parser and checks, and write
    the same folder. Every framework process's per-epoch lines are forwarded to sys.stdout, so
    a notebook cell shows progress. Returns the table (compare.load of the folder written; a
    --grid study: its results.csv) with the folder in `df.attrs["run_dir"]`; None for
    check_parity=True, which prints its table. A bad value or a failed run raises
    common.errors.UserError with the command line's one-line message."""
    with forwarded_output():
        folder = execute(flags_to_argv(build_parser(), {"task": task, **options}))
    if folder is None:
        return None
    if options.get("grid"):
        # Text cells as written ("None", "NA" are values here); only an empty cell is missing.
        frame = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    else:
        frame = report_command([str(folder)], echo=False)
    frame.attrs["run_dir"] = folder
    return frame


def load(*paths: str | Path, **options: Any) -> pd.DataFrame:
    """The table across runs that `python compare.py report PATH...` prints, as a DataFrame
    (numbers as numbers: a metric column holds the mean, `<metric>_std` and `n` follow where
    repeats are pooled). Keyword arguments mirror report's flags: sort="test_accuracy",
    descending=True, filter=["lr=0.01"], columns="lr,framework,test_accuracy", plot=True,
    out="table.tex". The shared configuration is in `df.attrs["shared"]`, the skipped records'
    lines in `df.attrs["skipped"]` (also printed as warnings)."""
    argv = [str(p) for p in paths] + flags_to_argv(build_report_parser(), options)
    return report_command(argv, echo=False)


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """`report PATH...` builds the table across runs; anything else runs (execute)."""
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["report"]:
        report_command(words[1:])
    else:
        execute(argv)
    return 0


def cli() -> int:
    """The command line: a UserError or Ctrl-C is one line on stderr and a non-zero exit."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; finished records are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `compare.py report ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


if __name__ == "__main__":
    sys.exit(cli())
