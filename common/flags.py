"""The command line's flags: the parser of a run (`build_parser`) and of `compare.py report`
(`build_report_parser`), with the flag types and the help formatter they share. Parent process;
parsing only: what the values mean and which combinations are allowed is common.plan's job.
"""

from __future__ import annotations

import argparse

from common.augment import AUGMENTATIONS
from common.config import DEVICES, INITS, MODES, NORMALIZE, PRECISIONS, VALIDATE_ON
from common.errors import UserError
from common.frameworks import BOTH, NAMES_HELP, parse_frameworks
from common.launch import ROOT
from common.optim import OPTIMIZERS
from common.report.formats import FORMATS
from common.report.values import CONFIG_KEYS, DEFAULT_METRICS, METRICS
from common.specs import PRESETS
from common.study_settings import GRID_KEYS, SWEEP_KEYS
from common.tasks import TASKS, get_task
from common.transfer import (
    BACKBONES,
    DEFAULT_FINE_TUNE_LAYERS,
    DEFAULT_IMAGE_SIZE,
    FINE_TUNE_LR_FACTOR,
    PIPELINES,
    torch_label,
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UserError: one line on stderr (no usage dump) and exit
    status 2 from the command line, the same message as an exception from compare.run."""

    def error(self, message: str):
        """Raise UserError(message) instead of printing usage and exiting."""
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
    """The parser of a run's flags (`compare.py --task ...`); `--help` lists every choice."""
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
                   "pool (0: none, the last epoch is tested; default per task: " + ", ".join(
                       f"{t}={d.val_size}" for t, d in TASKS.items()) + "; own images: 10%%)")
    g.add_argument("--normalize", choices=NORMALIZE,
                   help="input scaling, the same in both frameworks: standardize (per channel, "
                   "statistics of the training split; the default), unit (x/255), symmetric "
                   "((x/255 - 0.5)/0.5), imagenet (ImageNet's mean and std), none (raw 0-255)")
    g.add_argument("--validate-on", choices=VALIDATE_ON, default="val",
                   help="val: a validation split of the training pool; test: monitor the test "
                   "set each epoch as some labs do (no split; the test accuracy is then not an "
                   "unbiased estimate, and the report says so)")
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
    g.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    g.add_argument("--epsilon", type=float, help="the optimizer's epsilon (Keras' meaning on "
                   "both sides: Adam's epsilon hat, RMSprop's and Adagrad's inside the root, "
                   "Adamax's after the max; default 1e-7)")
    g.add_argument("--beta-1", type=float, help="Adam, Adamax, Nadam: beta_1 (default 0.9)")
    g.add_argument("--beta-2", type=float, help="Adam, Adamax, Nadam: beta_2 (default 0.999)")
    g.add_argument("--rho", type=float, help="RMSprop's rho (PyTorch's alpha; default 0.9), "
                   "Adadelta's rho (default 0.95)")
    g.add_argument("--l2", type=float, metavar="WD", help="L2 weight decay added to the "
                   "gradient, g += WD * w (PyTorch's weight_decay on SGD/Adam/...), both sides")
    g.add_argument("--decoupled-weight-decay", type=float, metavar="WD",
                   help="decoupled weight decay, w -= lr * WD * w before each update (Keras' "
                   "weight_decay, PyTorch's AdamW), both sides")
    g.add_argument("--seed", type=int, default=0, help="weight init, epoch order, dropout")
    g.add_argument("--init", default="shared", choices=INITS,
                   help="shared: both start from the same weights; native: each framework's own")
    g.add_argument("--no-restore-best", action="store_true",
                   help="test the last epoch's weights instead of the best validation loss's")
    g.add_argument("--augment", metavar="NAME[=S],...", help="comma list of training "
                   "augmentations, each with an optional strength S (default in brackets): "
                   + ", ".join(f"{n}[={v:g}] ({d})" for n, (_, v, d) in AUGMENTATIONS.items()))
    g.add_argument("--target-accuracy", type=float, metavar="A",
                   help="add a column: training seconds until the validation accuracy first "
                   "reached A (0-1), or 'not reached' (MLPerf's time to quality)")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation-loss improvement")
    g.add_argument("--lr-schedule", metavar="step:N:F|exp:G|cosine",
                   help="the learning rate per epoch, PyTorch's schedulers' rule in both "
                   "frameworks: step:N:F multiplies it by F every N epochs (StepLR), exp:G by G "
                   "every epoch (ExponentialLR), cosine anneals it to 0 over the epochs "
                   "(CosineAnnealingLR)")
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
                   "other processes leave free at start, all of them on an idle machine; with "
                   "--executor ray, 1, so a node runs a job per core)")
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
    g.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local: each framework job one after the other on this machine; ray: "
                   "each job a Ray task on a Ray cluster (an embedded one on this machine, or "
                   "--ray-address); needs pip install \"ray[default]==2.60.0\" "
                   "(docs/scaling-out.md)")
    g.add_argument("--ray-address", metavar="HOST:PORT",
                   help="join this Ray cluster's head node (implies --executor ray; default: "
                   "$RAY_ADDRESS, else an embedded single-machine runtime)")
    g.add_argument("--exclusive", action="store_true",
                   help="with --executor ray: at most one job per node at a time, so jobs do "
                   "not share a node's cores, caches and memory bandwidth (timing-grade runs)")
    g.add_argument("--no-plots", action="store_true",
                   help="skip the figures (curves, confusion matrices, worst-classified images)")
    g.add_argument("--out", default=str(ROOT / "results"), help="results folder; each run "
                   "writes a sub-folder with report.md, config.json and one record per run "
                   "(default: results/ in the project)")
    return p


OUT_FORMATS = {".md": "markdown", ".tex": "latex", ".csv": "csv", ".html": "html",
               ".htm": "html"}


def build_report_parser() -> argparse.ArgumentParser:
    """The parser of `compare.py report PATH...`."""
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

