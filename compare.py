"""Train the same CNN in Keras and PyTorch on one shared split and compare them.

    python compare.py --task cifar10 --framework both

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

from common.augment import AUGMENTATIONS, parse_augment
from common.config import DEVICES, FRAMEWORKS, INITS, RunConfig
from common.errors import UserError
from common.figures import write_figures
from common.launch import ROOT, call_worker, command_line, new_run_dir, run_parity, run_worker
from common.loop import Callbacks
from common.optim import OPTIMIZERS, resolve_optimizer
from common.parity import case_to_dict, default_optimizers
from common.records import run_records, write_json, write_text
from common.report import agreement_lines, markdown_table, parity_table, render_report
from common.report import difference_lines, transfer_lines
from common.specs import PRESETS, customize, get_preset, layer_table, parse_filters
from common.splits import make_split
from common.studies import (GRID_KEYS, SWEEP_KEYS, Study, grid_study, parse_study, product,
                            study_folder, sweep_study)
from common.tasks import OWN_IMAGES, TASKS, Task, get_task, is_own_images, load_dataset
from common.data import Dataset
from common.transfer import (BACKBONES, DEFAULT_FINE_TUNE_LAYERS, DEFAULT_IMAGE_SIZE,
                             FINE_TUNE_LR_FACTOR, PADDING_KERAS, PADDING_TORCHVISION, PIPELINES,
                             PROBE_IMAGES, TransferSpec, is_path, resolve_weights)
from common.worker import Job


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


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
    g.add_argument("--framework", default="both", choices=("both", *FRAMEWORKS),
                   help="which frameworks to train, each in its own process")
    g.add_argument("--model", choices=tuple(PRESETS),
                   help="architecture preset (default: the task's own: "
                   + ", ".join(f"{t}={d.model}" for t, d in TASKS.items()) + ")")
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
                       f"{t}={d.val_size}" for t, d in TASKS.items()) + "; own images: 10%)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/val split "
                   "(fixed across --repeats)")
    g = p.add_argument_group("model knobs (override the preset)")
    g.add_argument("--filters", help="conv filters: ',' between convs, '/' between blocks, "
                   "e.g. 32,64/64,128")
    g.add_argument("--kernel-size", type=int, help="kernel size of every conv")
    g.add_argument("--dense", type=_int_list, help="hidden dense sizes, e.g. 256,64")
    g.add_argument("--dropout", type=float, help="dropout after the first hidden dense layer")
    g.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="batch norm after every conv")
    g = p.add_argument_group("transfer learning (--pipeline transfer)")
    g.add_argument("--pipeline", default="cnn", choices=PIPELINES,
                   help="cnn: the preset CNN; transfer: a pretrained backbone with a new head, "
                   "trained in two phases (frozen base, then fine-tuning of its top blocks)")
    g.add_argument("--backbone", choices=tuple(BACKBONES),
                   help="default mobilenetv2; " + "; ".join(
                       f"{b.name}: keras.applications.{b.keras_name} / torchvision.models."
                       f"{b.torch_name}" for b in BACKBONES.values()))
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
    g.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads for each framework (the same for both; default: all cores)")
    g.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto: CUDA where PyTorch finds it, else CPU (TensorFlow here is CPU-only)")
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
        get_preset(model),
        filters=parse_filters(args.filters) if args.filters else None,
        kernel_size=args.kernel_size, dense=args.dense, dropout=args.dropout,
        batch_norm=args.batch_norm,
    )
    optimizer = resolve_optimizer(args.optimizer or task.optimizer, args.lr, args.momentum)
    epochs = task.epochs if args.epochs is None else args.epochs
    transfer = transfer_from_args(args, optimizer["lr"], epochs)
    return RunConfig(
        task=args.task, model=transfer.backbone if transfer else model, arch=arch,
        optimizer=optimizer, epochs=epochs,
        batch_size=task.batch_size if args.batch_size is None else args.batch_size,
        seed=args.seed, split_seed=args.split_seed,
        train_size=args.train_size,
        val_size=val_size,
        restore_best=not args.no_restore_best, init=args.init,
        augment=parse_augment(args.augment),
        deterministic=not args.no_deterministic, threads=args.threads, device=args.device,
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


def resolve(args: argparse.Namespace, argv: list[str] | None,
            pool_size: int | None = None) -> Plan:
    """Every flag and every combination, checked; raises UserError before anything is read or
    written (called again with the pool size once own images are loaded)."""
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.early_stopping is not None and args.early_stopping < 1:
        raise UserError("--early-stopping PATIENCE must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder (it is created if missing)")
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
        if args.grid and (args.early_stopping or args.reduce_lr_on_plateau or args.augment):
            raise UserError("--grid fits have no validation set and no augmentation: drop "
                            "--early-stopping, --reduce-lr-on-plateau and --augment, or use --sweep")
    cfg = config_from_args(args, pool_size)
    if args.check_parity and cfg.transfer and not is_path(cfg.transfer.weights):
        raise UserError("--check-parity --pipeline transfer compares the frameworks' features "
                        "from the same weights: give --weights PATH")
    study = parse_study(args.grid or args.sweep, study_kind) if study_kind else None
    # A point overrides the flags it names, so defaults resolve as for one run (e.g. each
    # optimizer of a grid gets its own default lr unless --lr is given).
    points = tuple(config_from_args(argparse.Namespace(**{**vars(args), **point}), pool_size)
                   for point in product(study)) if study else (cfg,)
    callbacks = Callbacks(restore_best=cfg.restore_best, early_stopping=args.early_stopping,
                          reduce_lr=args.reduce_lr_on_plateau)
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    return Plan(command_line(argv), frameworks, cfg, callbacks, args.repeats, study_kind, study,
                points)


def check_devices(plan: Plan) -> None:
    """--device cuda: each framework's process says whether it can use a GPU, before anything
    is written (auto and cpu always work)."""
    if plan.config.device == "cuda":
        for framework in plan.frameworks:
            call_worker(framework, {"kind": "device", "device": "cuda"})


def check_data(plan: Plan, ds: Dataset) -> None:
    """Sizes, shapes and augmentations against the loaded data: one line, nothing written."""
    shape = input_shape(ds)
    for cfg in plan.points:
        make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
        if not cfg.transfer:
            layer_table(cfg.arch, shape, len(ds.class_names))
        parse_augment(",".join(cfg.augment), channels=shape[-1])


def check_weights(plan: Plan) -> None:
    """Before anything is written: PATH weights are converted once for Keras by a PyTorch
    process (which reads them with torch.load, weights_only); `imagenet` weights must be in each
    framework's cache (downloaded now unless --no-download)."""
    cfg, spec = plan.config, plan.config.transfer
    job = {"spec": dataclasses.asdict(spec), "cache_dir": cfg.cache_dir}
    if is_path(spec.weights):
        call_worker("torch", {"kind": "convert", **job})
    elif spec.weights == "imagenet":  # every framework's missing file named in the one line
        errors = []
        for framework in plan.frameworks:
            try:
                call_worker(framework, {"kind": "fetch", **job, "download": cfg.download})
            except UserError as err:
                errors.append(str(err))
        if errors:
            raise UserError("; ".join(errors))


def input_shape(ds: Dataset) -> tuple[int, int, int]:
    return tuple(int(d) for d in ds.x_train.shape[1:])


# ----------------------------------------------------------------------------- actions


def check_parity(cfg: RunConfig, shape: tuple[int, int, int], num_classes: int) -> None:
    """Both frameworks, each in its own process, from the shared initial weights."""
    case = case_to_dict(cfg.model, cfg.arch, shape, num_classes, cfg.seed, default_optimizers())
    result = run_parity([case])[cfg.model]
    print("\n" + parity_table(cfg.model, cfg.task, shape, cfg.seed, result))


def check_transfer_parity(plan: Plan, ds: Dataset) -> None:
    """--check-parity --pipeline transfer: both frameworks' pooled base features of the first
    test images, each framework in its own process, from the same (converted) weights."""
    import numpy as np  # noqa: PLC0415  (only this check needs arrays here)

    cfg, spec = plan.config, plan.config.transfer
    with tempfile.TemporaryDirectory(prefix="dlcv-probe-") as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, ds.x_test[:PROBE_IMAGES].astype(np.float32) / 255)
        features = {}
        for fw in FRAMEWORKS:
            out = Path(tmp) / f"{fw}.npz"
            call_worker(fw, {"kind": "probe", "spec": dataclasses.asdict(spec),
                             "images": str(images), "out": str(out), "threads": cfg.threads,
                             "cache_dir": cfg.cache_dir})
            features[fw] = dict(np.load(out))
    used = PADDING_TORCHVISION if spec.match_padding else PADDING_KERAS
    print(f"\nFeature agreement of {spec.backbone} with {spec.weights_label()} at "
          f"{spec.image_size}px on {cfg.task}:")
    for line in agreement_lines(features["keras"], features["torch"], used):
        print(line)


def run_comparison(plan: Plan, ds: Dataset, out: str, plots: bool) -> int:
    """Each framework in its own process, per repeat; then the report from the records."""
    cfg = plan.config
    try:
        run_dir = new_run_dir(out, cfg.task)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create a run folder there ({err.strerror})") from None
    run_config = {"command": plan.command, "frameworks": list(plan.frameworks),
                  "repeats": plan.repeats, "callbacks": dataclasses.asdict(plan.callbacks),
                  "config": cfg.to_dict()}
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
        print(f"\nResults: {run_dir}/report.md\n")
        for line in transfer + difference_lines(records):
            print(line)
        print(markdown_table(records))
    if failed:
        raise UserError(f"run failed: {', '.join(failed)}; completed records are in {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """parse -> resolve (every check) -> load the data once -> parity, study or comparison."""
    args = build_parser().parse_args(argv)
    plan = resolve(args, argv)
    check_devices(plan)
    task: Task = get_task(args.task)
    cfg = plan.config
    if args.check_parity and not cfg.transfer and task is not OWN_IMAGES:
        check_parity(cfg, task.input_shape, task.num_classes)  # shapes only: no data needed
        return 0
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    if is_own_images(cfg.task):  # the validation size depends on the pool: resolve again
        plan = resolve(args, argv, pool_size=len(ds.x_train))
        cfg = plan.config
    check_data(plan, ds)
    if cfg.transfer:
        check_weights(plan)
    if args.check_parity and cfg.transfer:
        check_transfer_parity(plan, ds)
    elif args.check_parity:
        check_parity(cfg, input_shape(ds), len(ds.class_names))
    elif plan.study_kind == "grid":
        folder = study_folder(args.out, "grid", cfg, plan.callbacks, plan.study, args.cv)
        return grid_study(folder, plan.study, list(plan.points), plan.frameworks, args.cv,
                          plan.command)
    elif plan.study_kind == "sweep":
        folder = study_folder(args.out, "sweep", cfg, plan.callbacks, plan.study)
        return sweep_study(folder, plan.study, list(plan.points), plan.frameworks,
                           plan.callbacks, plan.command, plots=not args.no_plots)
    else:
        return run_comparison(plan, ds, args.out, plots=not args.no_plots)
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


if __name__ == "__main__":
    sys.exit(cli())
