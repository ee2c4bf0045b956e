"""Flags -> the `Plan` of an invocation: every flag resolved into the one RunConfig (and a
study's points), every rule and combination checked, before any data is read or anything is
written. Parent process. Reads nothing but the flags, the machine's CPU load (the --threads
default) and whether --out is a folder; loading data and starting framework processes is
common.preflight's and common.runner's.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from common.augment import parse_augment
from common.config import Callbacks, RunConfig, parse_lr_schedule
from common.errors import UserError
from common.flags import build_parser
from common.frameworks import check_grid_versions, is_keras
from common.launch import LOCAL, Executor, command_line
from common.machine import free_cores
from common.optim import resolve_optimizer
from common.knobs import customize, parse_filters
from common.specs import ArchSpec, get_arch
from common.study_settings import Study, parse_study, product
from common.tasks import OWN_IMAGES, get_task
from common.transfer import (
    BACKBONES,
    DEFAULT_FINE_TUNE_LAYERS,
    DEFAULT_IMAGE_SIZE,
    FINE_TUNE_LR_FACTOR,
    TransferSpec,
    is_path,
    resolve_weights,
)

TRANSFER_FLAGS = ("backbone", "weights", "fine_tune_layers", "fine_tune_lr", "fine_tune_epochs",
                  "match_padding")


def transfer_from_args(args: argparse.Namespace, lr: float, epochs: int) -> TransferSpec | None:
    """The TransferSpec the transfer flags describe (defaults filled in; `lr` and `epochs` are
    the head phase's, which the fine-tuning defaults derive from), or None for --pipeline cnn.
    Raises UserError when a transfer flag is given without --pipeline transfer, or --weights is
    unusable."""
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
    if args.validate_on == "test":  # the test set monitors the epochs: no validation split
        if val_size:
            raise UserError("--validate-on test monitors the test set; drop --val-size")
        val_size = 0
    if val_size is None:
        val_size = task.val_size if task.val_size is not None else max(1, (pool_size or 10) // 10)
    no_validation = val_size == 0 and args.validate_on == "val"
    if no_validation and (args.early_stopping or args.reduce_lr_on_plateau):
        raise UserError("--val-size 0 leaves no validation loss to watch: drop "
                        "--early-stopping and --reduce-lr-on-plateau, or validate")
    model = args.model or task.model
    arch = customize(
        get_arch(model),
        filters=parse_filters(args.filters) if args.filters else None,
        kernel_size=args.kernel_size, dense=args.dense, dropout=args.dropout,
        batch_norm=args.batch_norm,
    )
    optimizer = resolve_optimizer(
        args.optimizer or task.optimizer, args.lr, args.momentum, epsilon=args.epsilon,
        beta_1=args.beta_1, beta_2=args.beta_2, rho=args.rho, nesterov=args.nesterov,
        l2=args.l2, decoupled_weight_decay=args.decoupled_weight_decay)
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
        # --val-size 0: the last epoch is tested (there is no best validation epoch)
        restore_best=not (args.no_restore_best or no_validation), init=args.init,
        augment=parse_augment(args.augment),
        deterministic=not (args.no_deterministic or args.mode == "fast"), mode=args.mode,
        precision=args.precision,
        threads=args.threads or os.cpu_count() or 1,  # resolve() sets the free cores first
        device=args.device,
        data_dir=args.data_dir, cache_dir=args.cache_dir, download=not args.no_download,
        image_size=args.image_size, image_dir=args.image_dir,
        pipeline=args.pipeline, transfer=transfer,
        normalize=args.normalize or "standardize", validate_on=args.validate_on,
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
    executor: Executor = LOCAL  # where the framework jobs run (--executor, --ray-address)


_UNSET = object()
CNN_FLAGS = ("model", "filters", "kernel_size", "dense", "dropout", "batch_norm", "normalize")
# What --check-parity does not use: it runs one step of every optimizer on one fixed batch and
# writes nothing.
TRAINING_FLAGS = ("target_accuracy", "epochs", "batch_size", "optimizer", "lr", "momentum",
                  "nesterov", "epsilon", "beta_1", "beta_2", "rho", "l2",
                  "decoupled_weight_decay", "augment",
                  "early_stopping", "reduce_lr_on_plateau", "lr_schedule", "no_restore_best",
                  "train_size",
                  "val_size", "split_seed", "no_plots", "out", "repeats")


def given_flags(argv: list[str] | None) -> set[str]:
    """The argparse destinations the user typed (also at their default value), found by parsing
    `argv` again with every default replaced by a sentinel (argparse's own abbreviations and
    `--flag=value` forms included)."""
    parser = build_parser()
    # append actions (--grid, --sweep) copy their default list, so they keep None: given = set
    appends = {a.dest for a in parser._actions if isinstance(a, argparse._AppendAction)}
    parser.set_defaults(**{a.dest: _UNSET for a in parser._actions
                           if a.dest != "help" and a.dest not in appends})
    return {dest for dest, value in vars(parser.parse_args(argv)).items()
            if value is not _UNSET and not (dest in appends and value is None)}


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
    executor = executor_from_args(args)
    if args.threads is None:
        # On Ray every job asks for its threads as CPUs: one each lets a node run as many jobs
        # as it has cores (the driver's free cores say nothing about the nodes).
        args.threads = 1 if executor.kind == "ray" else default_threads()
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
    if executor.kind == "ray" and cfg.transfer:
        raise UserError("--pipeline transfer prepares its weights on this machine only; run it "
                        "with --executor local (docs/scaling-out.md)")
    if executor.kind == "ray" and cfg.precision == "mixed_float16" and cfg.device != "cuda":
        raise UserError("--precision mixed_float16 trains on GPUs only: add --device cuda, so "
                        "that Ray places each job on a GPU")
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
    if args.lr_schedule is not None and args.reduce_lr_on_plateau is not None:
        raise UserError("--lr-schedule and --reduce-lr-on-plateau both set the learning rate; "
                        "give one of them")
    callbacks = Callbacks(restore_best=cfg.restore_best, early_stopping=args.early_stopping,
                          reduce_lr=args.reduce_lr_on_plateau,
                          lr_schedule=(parse_lr_schedule(args.lr_schedule)
                                       if args.lr_schedule is not None else None),
                          target_accuracy=args.target_accuracy)
    frameworks = tuple(args.framework)
    return Plan(command_line(argv), frameworks, cfg, callbacks, args.repeats, study_kind, study,
                points, args.cv if study_kind == "grid" else 0, executor)


def executor_from_args(args: argparse.Namespace) -> Executor:
    """--executor, --ray-address (implies ray) and --exclusive (ray only) as an Executor."""
    kind = "ray" if args.ray_address else args.executor
    if args.exclusive and kind != "ray":
        raise UserError("--exclusive places Ray jobs one per node; add --executor ray")
    return Executor(kind, args.ray_address, args.exclusive)

