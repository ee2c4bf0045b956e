"""Train the same CNN in Keras and PyTorch on one shared split and compare them.

    python compare.py --task cifar10 --framework both

Reads top to bottom: parse flags -> resolve one RunConfig -> check the data (before anything is
written) -> run each framework in its own process (`python -m {keras,torch}_impl.train JOB`) ->
build the markdown report from the records they wrote -> print the table last.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.augment import AUGMENTATIONS, parse_augment
from common.config import (CUSTOM_DEFAULTS, DEVICES, FRAMEWORKS, INITS, TASK_DEFAULTS, TASK_INPUT,
                           RunConfig)
from common.custom_data import is_custom
from common.data import TASK_NAMES, Dataset, load_dataset
from common.errors import UserError
from common.figures import write_figures
from common.loop import Callbacks
from common.optim import OPTIMIZERS, resolve_optimizer
from common.parity import TOLERANCE, case_to_dict, default_optimizers, run_parity
from common.records import load_records, write_json_atomic, write_text_atomic
from common.report import difference_lines, markdown_table, render_report
from common.specs import PRESETS, customize, get_preset, layer_table, parse_filters
from common.splits import make_split
from common.transfer import (BACKBONES, DEFAULT_FINE_TUNE_LAYERS, DEFAULT_IMAGE_SIZE,
                             FINE_TUNE_LR_FACTOR, PADDING_KERAS, PADDING_TORCHVISION, PIPELINES,
                             PROBE_IMAGES, TransferSpec,
                             agreement_lines, check_path_weights, report_lines, resolve_weights,
                             spec_json, table_records)
from common.studies import (GRID_KEYS, SWEEP_KEYS, grid_study, parse_study, product,
                            study_folder, sweep_study)
from common.worker import Job

ROOT = Path(__file__).resolve().parent


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
    if text in TASK_NAMES or (is_custom(text) and text.partition(":")[2]):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(TASK_NAMES)}, folder:PATH, csv:FILE)")


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
                   + ", ".join(f"{t}={d.model}" for t, d in TASK_DEFAULTS.items()) + ")")
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
                       f"{t}={d.val_size}" for t, d in TASK_DEFAULTS.items()) + ")")
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
        f"{t}={d.epochs}" for t, d in TASK_DEFAULTS.items()))
    g.add_argument("--batch-size", type=int, help="default per task: " + ", ".join(
        f"{t}={d.batch_size}" for t, d in TASK_DEFAULTS.items()))
    g.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default per task: " + ", ".join(
        f"{t}={d.optimizer}" for t, d in TASK_DEFAULTS.items()))
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
        match_padding = weights not in ("imagenet", "none") and BACKBONES[backbone].padding_differs
    return TransferSpec(
        backbone=backbone, weights=weights,
        image_size=DEFAULT_IMAGE_SIZE if args.image_size is None else args.image_size,
        fine_tune_layers=(DEFAULT_FINE_TUNE_LAYERS if args.fine_tune_layers is None
                          else args.fine_tune_layers),
        fine_tune_lr=lr * FINE_TUNE_LR_FACTOR if args.fine_tune_lr is None else args.fine_tune_lr,
        fine_tune_epochs=epochs if args.fine_tune_epochs is None else args.fine_tune_epochs,
        match_padding=match_padding,
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    defaults = TASK_DEFAULTS.get(args.task, CUSTOM_DEFAULTS)
    val_size = defaults.val_size if args.val_size is None else args.val_size
    if args.val_size is None and is_custom(args.task):  # own data: 10% of the pool validates
        pool = load_dataset(args.task, image_size=args.image_size, image_dir=args.image_dir)
        val_size = max(1, len(pool.x_train) // 10)
    model = args.model or defaults.model
    arch = customize(
        get_preset(model),
        filters=parse_filters(args.filters) if args.filters else None,
        kernel_size=args.kernel_size, dense=args.dense, dropout=args.dropout,
        batch_norm=args.batch_norm,
    )
    optimizer = resolve_optimizer(args.optimizer or defaults.optimizer, args.lr, args.momentum)
    epochs = defaults.epochs if args.epochs is None else args.epochs
    transfer = transfer_from_args(args, optimizer["lr"], epochs)
    return RunConfig(
        task=args.task, model=transfer.backbone if transfer else model, arch=arch,
        optimizer=optimizer, epochs=epochs,
        batch_size=defaults.batch_size if args.batch_size is None else args.batch_size,
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


def check_data(cfg: RunConfig) -> Dataset:
    """Load (and cache) the data and build the split before anything is written: bad data or
    sizes fail here, with one line, and leave no results behind."""
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    make_split(len(ds.x_train), cfg.val_size, cfg.train_size, cfg.split_seed)
    layer_table(cfg.arch, input_shape(ds), len(ds.class_names))
    parse_augment(",".join(cfg.augment), channels=input_shape(ds)[-1])
    return ds


def input_shape(ds: Dataset) -> tuple[int, int, int]:
    return tuple(int(d) for d in ds.x_train.shape[1:])


def check_parity(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> None:
    """Both frameworks, each in its own process, from the shared initial weights."""
    case = case_to_dict(cfg.model, cfg.arch, input_shape, num_classes, cfg.seed,
                        default_optimizers())
    with tempfile.TemporaryDirectory() as tmp:
        result = run_parity([case], tmp)[cfg.model]
    print(f"\nParity of {cfg.model} on {cfg.task}-shaped input {input_shape}, seed {cfg.seed}: "
          f"params keras {result['params']['keras']:,}, torch {result['params']['torch']:,}\n")
    print("| quantity | max abs difference | within 1e-4 |")
    print("|---|---|---|")
    diffs = result["max_abs_diff"]
    for name in sorted(diffs, key=lambda n: (n != "logits", n)):
        diff = diffs[name]
        if name == "logits":
            label = "logits (inference)"
        elif name.endswith("moving stats"):
            label = f"BatchNorm moving stats after one {name.split()[0]} step (documented gap)"
        else:
            label = f"trainable weights after one {name} step"
        print(f"| {label} | {diff:.2e} | {'yes' if diff < TOLERANCE else 'no'} |")


def _transfer_process(framework: str, *args: str) -> str | None:
    """`python -m <framework>_impl.transfer ARGS`; None, or its one-line error."""
    proc = subprocess.run([sys.executable, "-m", f"{framework}_impl.transfer", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    return errors[-1][len("error: "):] if errors else (
        f"{framework}: {' '.join(proc.args[1:4])} failed (exit {proc.returncode}): "
        + " ".join(proc.stderr.strip().splitlines()[-1:]))


def check_weights(cfg: RunConfig, frameworks: tuple[str, ...]) -> None:
    """Before anything is written: PATH must be a state dict of the backbone's size, and
    `imagenet` weights must be in each framework's cache (downloaded now unless --no-download).
    Otherwise one line naming the file and the folder to place it in."""
    spec = cfg.transfer
    check_path_weights(spec)
    if spec.weights != "imagenet":
        return
    flags = [] if cfg.download else ["--no-download"]
    errors = [_transfer_process(fw, "fetch", spec_json(spec), *flags) for fw in frameworks]
    if any(errors):
        raise UserError("; ".join(e for e in errors if e))


def check_transfer_parity(cfg: RunConfig, ds: Dataset) -> None:
    """--check-parity --pipeline transfer: both frameworks' pooled base features of the first
    test images, each framework in its own process."""
    spec = cfg.transfer
    if spec.weights in ("imagenet", "none"):
        raise UserError("--check-parity --pipeline transfer compares the frameworks' features "
                        "from the same weights: give --weights PATH")
    import numpy as np  # noqa: PLC0415  (only this check needs arrays here)

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", ds.x_test[:PROBE_IMAGES].astype(np.float32) / 255)
        for fw in FRAMEWORKS:
            error = _transfer_process(fw, "probe", spec_json(spec), str(Path(tmp) / "images.npy"),
                                      str(Path(tmp) / f"{fw}.npz"), "--threads", str(cfg.threads))
            if error:
                raise UserError(error)
        keras, torch = (dict(np.load(Path(tmp) / f"{fw}.npz")) for fw in FRAMEWORKS)
    used = PADDING_TORCHVISION if spec.match_padding else PADDING_KERAS
    print(f"\nFeature agreement of {spec.backbone} with {spec.weights_label()} at "
          f"{spec.image_size}px on {cfg.task}:")
    for line in agreement_lines(keras, torch, used):
        print(line)


def new_run_dir(out: str, task: str) -> Path:
    """A fresh folder per invocation; mkdir is the lock, so parallel runs never share one."""
    if is_custom(task):  # folder:/a/b/pets -> folder-pets
        kind, _, where = task.partition(":")
        task = f"{kind}-{Path(where).stem}"
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{task}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_dir = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run folder under {out}")


def run_framework(framework: str, job: Job, job_path: Path, entry: str = "train") -> int:
    """Run one framework in its own Python process (`python -m <framework>_impl.<entry> JOB`,
    entry: train, or grid for --grid); its progress goes straight to the terminal."""
    write_json_atomic(job_path, job.to_dict())
    cmd = [sys.executable, "-m", f"{framework}_impl.{entry}", str(job_path)]
    return subprocess.call(cmd, cwd=ROOT)


def run_study(args: argparse.Namespace, argv: list[str] | None, cfg: RunConfig,
              callbacks: Callbacks, frameworks: tuple[str, ...]) -> int:
    """--grid / --sweep (common.studies): every configuration is resolved and its data checked
    before anything runs; the study folder is named after the arguments, so the same command
    with the same --out resumes it."""
    if args.grid and args.sweep:
        raise UserError("--grid and --sweep are separate studies; give one of them")
    if args.repeats > 1 or args.check_parity:
        raise UserError("--repeats and --check-parity cannot be combined with --grid or --sweep")
    if args.grid and args.cv < 2:
        raise UserError("--cv must be at least 2")
    if args.grid and (args.early_stopping or args.reduce_lr_on_plateau or cfg.augment):
        raise UserError("--grid fits have no validation set and no augmentation: drop "
                        "--early-stopping, --reduce-lr-on-plateau and --augment, or use --sweep")
    kind = "grid" if args.grid else "sweep"
    study = parse_study(args.grid or args.sweep, kind)
    # A point overrides the flags it names, so defaults resolve as for one run (e.g. each
    # optimizer of a grid gets its own default lr unless --lr is given).
    configs = [config_from_args(argparse.Namespace(**{**vars(args), **point}))
               for point in product(study)]
    for point_cfg in configs:
        check_data(point_cfg)
    folder = study_folder(args.out, kind, cfg, callbacks, study, args.cv if args.grid else None)
    command = "python compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.grid:
        return grid_study(folder, study, configs, frameworks, args.cv,
                          functools.partial(run_framework, entry="grid"), command)
    return sweep_study(folder, study, configs, frameworks, callbacks, run_framework, command,
                       plots=not args.no_plots)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.early_stopping is not None and args.early_stopping < 1:
        raise UserError("--early-stopping PATIENCE must be at least 1")
    cfg = config_from_args(args)
    callbacks = Callbacks(restore_best=cfg.restore_best, early_stopping=args.early_stopping,
                          reduce_lr=args.reduce_lr_on_plateau)
    if args.check_parity and not cfg.transfer and cfg.task in TASK_INPUT:
        check_parity(cfg, *TASK_INPUT[cfg.task])  # shapes only: no data needed
        return 0
    ds = check_data(cfg)
    if cfg.transfer and (args.grid or args.sweep):
        raise UserError("--grid and --sweep study the CNN presets; drop --pipeline transfer")
    if args.grid or args.sweep:
        return run_study(args, argv, cfg, callbacks, frameworks)
    if args.check_parity and cfg.transfer:
        check_transfer_parity(cfg, ds)
        return 0
    if args.check_parity:
        check_parity(cfg, input_shape(ds), len(ds.class_names))
        return 0
    if cfg.transfer:
        check_weights(cfg, frameworks)

    run_dir = new_run_dir(args.out, cfg.task)
    command = "python compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    run_config = {"command": command, "frameworks": list(frameworks), "repeats": args.repeats,
                  "callbacks": dataclasses.asdict(callbacks), "config": cfg.to_dict()}
    write_json_atomic(run_dir / "config.json", run_config)

    failed = []
    try:
        # Frameworks alternate within each repeat, so slow drift of the machine hits both alike.
        for repeat in range(args.repeats):
            for framework in frameworks:
                suffix = f"-r{repeat}" if args.repeats > 1 else ""
                job = Job(config=dataclasses.replace(cfg, seed=cfg.seed + repeat),
                          record_path=str(run_dir / f"record-{framework}{suffix}.json"),
                          repeat=repeat, callbacks=callbacks)
                code = run_framework(framework, job, run_dir / f"job-{framework}{suffix}.json")
                if code != 0:
                    failed.append(f"{framework} (exit {code})")
    except KeyboardInterrupt:
        failed.append("interrupted")

    records = load_records(run_dir)
    if records:
        figures = "" if args.no_plots else write_figures(records, ds.x_test, run_dir)
        transfer = report_lines(records, run_dir)  # [] for the CNN pipeline
        section = "\n".join(["## Transfer learning", "", *transfer, "", ""]) if transfer else ""
        shown = table_records(records)  # the epochs column counts both transfer phases
        write_text_atomic(run_dir / "report.md",
                          render_report(shown, run_config, command) + section + figures)
        print(f"\nResults: {run_dir}/report.md\n")
        for line in transfer + difference_lines(records):
            print(line)
        print(markdown_table(shown))
    if failed:
        raise UserError(f"run failed: {', '.join(failed)}; completed records are in {run_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
