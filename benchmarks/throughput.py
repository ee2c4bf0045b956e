"""Throughput across the registry: training and inference images/s of every preset, in every
installed framework, mode and precision, and the FLOP/s that is against the machine's measured
peak for that precision.

    python benchmarks/throughput.py                       # the default subset (< 10 min, 2 cores)
    python benchmarks/throughput.py --frameworks all --modes reference,fast
    python benchmarks/throughput.py --models my_net.toml  # any architecture file (--model FILE)
    python benchmarks/throughput.py --models transfer --out benchmarks/results/throughput-transfer
    python benchmarks/throughput.py --fast-settings       # what --mode fast uses on this CPU kind
    python benchmarks/throughput.py --render benchmarks/results/throughput

One process per (framework, mode, precision), with the suite's settings for that mode
(`{keras,torch}_impl.train.setup` and `make_trainer`, as a real run), measures every model on
synthetic in-memory data at the model's own input size: one warm-up epoch, then the median of
`--rounds` epochs of the suite's `train_epoch` (training img/s) and of `predict` at the
evaluation batch size (inference img/s). The image count per model is sized so that an epoch is
about `--gflop` GFLOP of training work (between 128 and 2048 images). The default subset (every
preset, Keras and PyTorch, mode fast, float32 and mixed_bfloat16) is meant to take under 10
minutes on 2 cores; `--modes reference,fast` adds the reference mode.

`--models transfer` (or `transfer:BACKBONE` in a list; `all` is every preset and backbone)
measures each transfer-learning backbone (`--weights none`: the speed does not depend on the
weights) on 32x32 images resized to `--image-size` inside the network, as a transfer run of
CIFAR-10 is built (common.worker.transfer), in its two phases: `head` (the base frozen, batch
norm in inference mode, the new head trained, on images: what a run does each epoch when it
augments, and its inference rate is what extracting the cached features costs), and
`fine-tune` (the top `fine_tune_layers` blocks unfrozen). TRANSFER_IMAGES images per epoch.

FLOPs per image: 3 x the forward FLOPs of the convolutions and dense layers for training, 1 x
for inference (common.specs.forward_flops). A backbone's forward FLOPs are counted by PyTorch
(torch.utils.flop_counter.FlopCounterMode, per block), and its training FLOPs are the forward
plus 2 x the forward of the head and the unfrozen blocks, which the backward passes through
(_counted_train_flops); PyTorch's count is used for every framework's row of that network and
phase (the same graph; Keras' ResNet50 adds conv biases, a negligible count).

The peak of a precision is the best square matrix multiply (n=2048 and 4096, best of 5) that any
measured framework reaches in its own process, with its own thread settings (matmul_peak):
float32 for float32 runs, bfloat16 for mixed_bfloat16 runs (fast only where the CPU has
AVX512-BF16 or AMX; on other CPUs bfloat16 is emulated and its peak is low, which the table then
shows). Each framework's own figure is in the records' meta.json.

`--fast-settings` instead measures each framework's `--mode fast` candidates (PyTorch with and
without channels_last; Keras on TensorFlow with XLA 'auto' and off) on cifar10_cnn in float32, and
records the fastest (the default unless another is more than 3% faster) for this CPU kind
(common.machine.cpu_kind: intel-amx, amd-avx512, ...) in common/fast_settings.json, which
`--mode fast` then uses on every machine of that kind.

A measurement taken while other processes used more than common.machine.BUSY_SHARE of the CPU is
refused: its row says "busy" instead of a figure. The records (one JSON line per measurement,
with the CPU model and flags) go to benchmarks/results/throughput/runs.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.config import MODES, RunConfig
from common.frameworks import FRAMEWORKS, installed
from common.machine import (FAST_DEFAULTS, FAST_OPTIONS_ENV, FAST_SETTINGS, LoadMonitor,
                            apply_thread_policy, cpu_kind, cpu_model)
from common.optim import resolve_optimizer
from common.files import write_text
from common.specs import PRESETS, ArchSpec, forward_flops, get_arch
from common.splits import epoch_order
from common.transfer import BACKBONES, DEFAULT_IMAGE_SIZE, TransferSpec

OUT = ROOT / "benchmarks" / "results" / "throughput"
PRECISIONS = ("float32", "mixed_bfloat16")
DEFAULT_MODELS = "presets"
TRANSFER = "transfer"  # --models transfer: every backbone; transfer:NAME in a list: one
TRANSFER_INPUT = (32, 32, 3)  # CIFAR-10's images, resized inside the network
TRANSFER_IMAGES = 192  # three batches of 64 per timed epoch: a backbone's epoch takes seconds
DEFAULT_FRAMEWORKS = "keras,torch"
DEFAULT_PRECISIONS = "float32,mixed_bfloat16"
NUM_CLASSES = 10
EVAL_BATCH = 256


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix extensions that matter for these kernels."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    return [f for f in wanted if f in flags]


def images_for(flops: int, gflop: float) -> int:
    return int(min(2048, max(128, gflop * 1e9 / (3 * flops))) // 64 * 64)


def _synthetic(n: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, object]:
    """n random images of `shape` in [0, 1), labels, and a PreparedData holding them."""
    from common.data.prepare import PreparedData

    rng = np.random.default_rng(0)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
    data = PreparedData(x, y, x[:64], y[:64], x[:64], y[:64], shape, NUM_CLASSES,
                        tuple(map(str, range(NUM_CLASSES))), "synthetic")
    return x, y, data


def _rates(trainer, x: np.ndarray, y: np.ndarray, args) -> dict:
    """One warm-up epoch (tracing, allocator, caches), then the median training and inference
    img/s of `args.rounds` epochs, and the machine's load meanwhile."""
    n = len(x)
    trainer.train_epoch(x, y, epoch_order(n, 0, 0))
    trainer.predict(x)
    train_rates, infer_rates = [], []
    with LoadMonitor(args.threads) as monitor:
        for r in range(1, args.rounds + 1):
            start = time.perf_counter()
            trainer.train_epoch(x, y, epoch_order(n, 0, r))
            train_rates.append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            trainer.predict(x)
            infer_rates.append(n / (time.perf_counter() - start))
    return {"images": n, "train_img_s": statistics.median(train_rates),
            "infer_img_s": statistics.median(infer_rates), "busy": monitor.result.busy,
            "contention": monitor.result.to_dict()}


def _counted_train_flops(framework: str, model, blocks: int, x: np.ndarray) -> float | None:
    """Training FLOPs per image of a transfer network with its top `blocks` base blocks (and
    the head) trainable: the forward pass as PyTorch counts it (FlopCounterMode: convolutions
    and matrix products, per module), plus a backward of 2 x the forward of the part it passes
    through (the head and those blocks; the rule behind the presets' 3 x forward). The counter's
    own backward figures are not used: it counts MobileNetV2's depthwise convolutions' backward
    at 19x their forward (measured), not a backward's ~2x. None outside PyTorch."""
    if framework != "torch":
        return None
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.net(torch.from_numpy(x[:8]).permute(0, 3, 1, 2))
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    base = len(model.net.base)
    trained = counts.get("TransferNet.head", 0) + sum(
        counts.get(f"TransferNet.base.{i}", 0) for i in range(base - blocks, base))
    return (counts["Global"] + 2 * trained) / 8


def _config(name: str, arch: ArchSpec, mode: str, precision: str, args,
            transfer: TransferSpec | None = None) -> RunConfig:
    return RunConfig(task="synthetic", model=name, arch=arch,
                     optimizer=resolve_optimizer("sgd"), epochs=1, batch_size=args.batch_size,
                     threads=args.threads, device="cpu", mode=mode, precision=precision,
                     deterministic=mode == "reference", download=False,
                     pipeline="cnn" if transfer is None else "transfer", transfer=transfer)


def _transfer_rows(framework: str, name: str, mode: str, precision: str, args) -> list[dict]:
    """A backbone's two phases (module docstring), as common.worker.transfer builds them."""
    from common.worker.process import impl

    backbone = name.split(":", 1)[1]
    transfer = TransferSpec(backbone, weights="none", image_size=args.image_size)
    x, y, data = _synthetic(TRANSFER_IMAGES, TRANSFER_INPUT)
    cfg = _config(backbone, ArchSpec(name=backbone, layers=()), mode, precision, args, transfer)
    train = impl(framework, "train")
    model = impl(framework, "transfer").make_transfer_model(cfg, data, (), "cpu")
    rows = []
    for phase, blocks in (("head", 0), ("fine-tune", transfer.fine_tune_layers)):
        trainable = model.freeze(blocks)
        flops = _counted_train_flops(framework, model, blocks, x)
        trainer = train.make_trainer(cfg, data, None, "cpu", model.net)
        rows.append({"model": name, "phase": phase, "image_size": args.image_size,
                     "trainable_params": trainable, "framework": framework, "mode": mode,
                     "precision": precision, **_rates(trainer, x, y, args),
                     "train_gflop_per_image": None if flops is None else flops / 1e9})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def measure(framework: str, mode: str, precision: str, models: list[str], args) -> list[dict]:
    """In this (the framework's) process: every model's rates, or 'busy' rows."""
    from common.worker.process import impl

    train = impl(framework, "train")
    train.setup(args.threads, 0, mode == "reference")
    rows = []
    for name in models:
        if name.startswith(f"{TRANSFER}:"):
            rows += _transfer_rows(framework, name, mode, precision, args)
            continue
        arch = get_arch(name)  # a preset, or an architecture file (--model FILE)
        shape = arch.input_shape
        if shape is None:
            raise SystemExit(f"error: {name}: no input size; add an `input = [H, W, C]` line")
        flops = forward_flops(arch, shape, NUM_CLASSES)
        x, y, data = _synthetic(images_for(flops, args.gflop), shape)
        cfg = _config(name, arch, mode, precision, args)
        trainer = train.make_trainer(cfg, data, None, "cpu")
        rows.append({"model": name, "framework": framework, "mode": mode, "precision": precision,
                     **_rates(trainer, x, y, args), "train_gflop_per_image": 3 * flops / 1e9})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


PEAK_SIZES = (2048, 4096)


def matmul_peak(framework: str, precision: str, repeats: int = 5) -> float:
    """FLOP/s of this framework's own square matrix multiply in the precision's compute type
    (bfloat16 for mixed_bfloat16, else float32), the best of `repeats` at each of PEAK_SIZES, in
    this (the framework's) process with its thread settings: the peak a network's kernels can
    be held to is the best any of the frameworks' GEMMs reaches (oneDNN's, under TensorFlow,
    beat PyTorch's by 16% in float32 on a 2-core AMD EPYC, 2026-12-01)."""
    bfloat16 = precision == "mixed_bfloat16"
    if framework == "torch":
        import torch

        def operands(n: int) -> list:
            return [torch.rand(n, n).to(torch.bfloat16 if bfloat16 else torch.float32)
                    for _ in range(2)]

        def multiply(a, b) -> None:
            a @ b  # synchronous on the CPU
    else:
        import keras

        def operands(n: int) -> list:
            return [keras.ops.cast(keras.random.uniform((n, n), seed=i),
                                   "bfloat16" if bfloat16 else "float32") for i in range(2)]

        def multiply(a, b) -> None:
            keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # waits for JAX's result

    best = 0.0
    for n in PEAK_SIZES:
        a, b = operands(n)
        multiply(a, b)  # warm-up (JAX compiles here)
        for _ in range(repeats):
            start = time.perf_counter()
            multiply(a, b)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start))
    return best


# --fast-settings: each side's candidate --mode fast options, measured against each other.
FAST_CANDIDATES = {"torch": [{"channels_last": True}, {"channels_last": False}],
                   "keras": [{"jit_compile": "auto"}, {"jit_compile": False}]}
FAST_MODEL = "cifar10_cnn"
NOISE = 0.03  # relative: two runs of one setting differ by up to ~2% here


def run_worker(framework: str, mode: str, precision: str, models: list[str], argv: list[str],
               options: dict | None = None) -> dict:
    """One measuring process (a Keras backend is fixed per process): its rows, and its own
    matrix multiply's FLOP/s (matmul_peak)."""
    env = {**os.environ, "KERAS_BACKEND": FRAMEWORKS[framework].keras_backend or ""}
    if options is not None:
        env[FAST_OPTIONS_ENV] = json.dumps(options)
    cmd = [sys.executable, __file__, *argv, "--models", ",".join(models), "--worker",
           f"{framework}:{mode}:{precision}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"error: {framework} {mode} {precision}: "
                         + (proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])  # {"rows": [...], "peak": FLOP/s}


def fast_settings(args, argv: list[str]) -> None:
    """Measure FAST_CANDIDATES on FAST_MODEL and record the fastest per framework for this CPU
    kind in common/fast_settings.json (other kinds' entries are kept). A busy measurement stops
    it: a choice made on a shared CPU would be the other processes' choice."""
    kind = cpu_kind()
    settings = json.loads(FAST_SETTINGS.read_text()) if FAST_SETTINGS.exists() else {}
    entry = settings.setdefault(kind, {})
    for side, candidates in FAST_CANDIDATES.items():
        rates = []
        for options in candidates:
            row = run_worker(side, "fast", "float32", [FAST_MODEL], argv, options)["rows"][0]
            if row["busy"]:
                raise SystemExit(f"error: the machine was busy while {side} {options} was "
                                 "measured; rerun on an idle machine")
            rates.append((row["train_img_s"], options))
            print(f"{side} {options}: {row['train_img_s']:.0f} img/s", flush=True)
        # A candidate replaces the default only when it is clearly faster: within
        # NOISE of it, the difference is run-to-run noise on 2 cores, not a setting's.
        default = next(r for r, o in rates if o == FAST_DEFAULTS[side])
        fastest, best = max(rates, key=lambda r: r[0])
        if fastest < default * (1 + NOISE):
            best = FAST_DEFAULTS[side]
        entry[side] = {"options": best, "model": FAST_MODEL, "cpu": cpu_model(),
                       "date": time.strftime("%Y-%m-%d"),
                       "train_img_s": {json.dumps(o, sort_keys=True): round(r, 1)
                                       for r, o in rates}}
    write_text(FAST_SETTINGS, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    print(f"{FAST_SETTINGS}: {kind}: " + "; ".join(f"{s} {e['options']}" for s, e in entry.items()))


def _label(row: dict) -> str:
    """A row's network: the preset or file, or 'BACKBONE SIZEpx, PHASE'."""
    if "phase" not in row:
        return row["model"]
    return f"{row['model'].split(':', 1)[1]} {row['image_size']}px, {row['phase']}"


def render(folder: Path) -> str:
    """The table of the records in `folder` (runs.jsonl, meta.json). A backbone row without its
    own FLOP count takes PyTorch's for the same network and phase ('n/a' without one)."""
    import pandas as pd

    meta = json.loads((folder / "meta.json").read_text())
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    counted = {_label(r): r["train_gflop_per_image"] for r in rows
               if r["train_gflop_per_image"] is not None}
    table = []
    for r in rows:
        peak_flops = meta["peak_gflop_s"][r["precision"]]
        per_image = counted.get(_label(r))
        gflops = None if per_image is None else r["train_img_s"] * per_image

        def shown(text: str) -> str:
            return "busy" if r["busy"] else text

        table.append({
            "model": _label(r), "framework": r["framework"], "mode": r["mode"],
            "precision": r["precision"],
            "train img/s": shown(f"{r['train_img_s']:.0f}"),
            "inference img/s": shown(f"{r['infer_img_s']:.0f}"),
            "train GFLOP/s": shown("n/a" if gflops is None else f"{gflops:.1f}"),
            "% of peak": shown("n/a" if gflops is None else f"{100 * gflops / peak_flops:.0f}%")})
    head = (f"CPU: {meta['cpu']} ({', '.join(meta['flags']) or 'no flags read'}), "
            f"{meta['threads']} threads, {meta['date']}; batch {meta['batch_size']}, median of "
            f"{meta['rounds']} epochs of about {meta['gflop']:g} GFLOP"
            + (f" (a backbone: {TRANSFER_IMAGES} images)" if any("phase" in r for r in rows)
               else "")
            + "; peak (the best of the frameworks' matrix multiplies, n=2048 and 4096): "
            + ", ".join(f"{p} {v:.0f} GFLOP/s ("
                        + ", ".join(f"{fw} {g:.0f}"
                                    for fw, g in meta["peak_gflop_s_by_framework"][p].items())
                        + ")" for p, v in meta["peak_gflop_s"].items()))
    return head + "\n\n" + pd.DataFrame(table).to_markdown(index=False)


# Issue 22's goals for every network of at least cifar10_cnn's training FLOPs, on an idle
# machine: each framework's best mode at least GOAL_PEAK_SHARE of its precision's peak, and the
# frameworks' best modes within GOAL_RATIO of each other.
GOAL_MODEL = "cifar10_cnn"
GOAL_PEAK_SHARE = 0.8
GOAL_RATIO = 1.3


def goals(folder: Path) -> str:
    """The goals table of the records in `folder`: per network (at least GOAL_MODEL's training
    FLOPs per image) and precision, each framework's best mode's img/s and share of the peak,
    and the ratio of the frameworks' best; 'yes'/'no' against GOAL_PEAK_SHARE and GOAL_RATIO.
    Busy rows are left out; a network and precision with a framework measured only while busy
    says which, and gets no verdict that needs that framework."""
    import pandas as pd

    meta = json.loads((folder / "meta.json").read_text())
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    counted = {_label(r): r["train_gflop_per_image"] for r in rows
               if r["train_gflop_per_image"] is not None}
    floor = counted.get(GOAL_MODEL, 0.0)
    best: dict[tuple[str, str], dict[str, dict]] = {}
    frameworks: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        if counted.get(_label(r), 0.0) < floor or _label(r) not in counted:
            continue
        frameworks.setdefault((_label(r), r["precision"]), set()).add(r["framework"])
        per_framework = best.setdefault((_label(r), r["precision"]), {})
        if r["busy"]:
            continue
        if r["train_img_s"] > per_framework.get(r["framework"], {}).get("train_img_s", 0):
            per_framework[r["framework"]] = r
    table = []
    for (label, precision), per_framework in best.items():
        peak_flops = meta["peak_gflop_s"][precision]
        rates = {fw: r["train_img_s"] for fw, r in per_framework.items()}
        missing = sorted(frameworks[label, precision] - set(rates))
        if not rates:
            table.append({"model": label, "precision": precision,
                          "best mode, img/s (share of peak)": "n/a: every row busy",
                          f">= {GOAL_PEAK_SHARE:g} of peak": "n/a",
                          "fastest / slowest": f"n/a: {', '.join(missing)} busy",
                          f"within {GOAL_RATIO:g}x": "n/a"})
            continue
        shares = {fw: rate * counted[label] / peak_flops for fw, rate in rates.items()}
        ratio = max(rates.values()) / min(rates.values())
        table.append({
            "model": label, "precision": precision,
            "best mode, img/s (share of peak)": "; ".join(
                f"{fw} {per_framework[fw]['mode']} {rates[fw]:.0f} ({shares[fw]:.0%})"
                for fw in sorted(rates)),
            f">= {GOAL_PEAK_SHARE:g} of peak": "yes" if min(shares.values()) >= GOAL_PEAK_SHARE
            else "no: " + ", ".join(fw for fw in sorted(shares)
                                    if shares[fw] < GOAL_PEAK_SHARE),
            "fastest / slowest": f"n/a: {', '.join(missing)} busy" if missing
            else f"{ratio:.2f}x",
            f"within {GOAL_RATIO:g}x": "n/a" if missing
            else "yes" if ratio <= GOAL_RATIO else "no"})
    return pd.DataFrame(table).to_markdown(index=False)


def model_names(models: str) -> list[str]:
    """--models: presets, transfer (every backbone), all (both), or a comma list of presets,
    architecture files and transfer:BACKBONE names."""
    groups = {"presets": list(PRESETS), TRANSFER: [f"{TRANSFER}:{b}" for b in BACKBONES]}
    groups["all"] = groups["presets"] + groups[TRANSFER]
    names = groups.get(models) or models.split(",")
    unknown = [n for n in names if n.startswith(f"{TRANSFER}:")
               and n.split(":", 1)[1] not in BACKBONES]
    if unknown:
        raise SystemExit(f"error: {', '.join(unknown)}: backbones are " + ", ".join(BACKBONES))
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="presets (the default), transfer (every backbone, both phases), all, or "
                   "a comma list of presets, architecture files (TOML, as --model FILE; its own "
                   "input size, from its `input` line) and transfer:BACKBONE")
    p.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                   help="a backbone's input size, pixels (as a transfer run's --image-size)")
    p.add_argument("--frameworks", default=DEFAULT_FRAMEWORKS,
                   help="all (every installed one) or a comma list")
    p.add_argument("--modes", default="fast", help="comma list of " + ", ".join(MODES)
                   + " (default: fast, each framework's best, to stay within 10 minutes)")
    p.add_argument("--precisions", default=DEFAULT_PRECISIONS)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--gflop", type=float, default=400.0, help="training work per timed epoch")
    p.add_argument("--render", type=Path)
    p.add_argument("--goals", type=Path, help="the goals table of the records in this folder")
    p.add_argument("--out", type=Path, default=OUT,
                   help="where the records go (default: the committed ones, replaced)")
    p.add_argument("--fast-settings", action="store_true",
                   help="measure --mode fast's candidates, record the fastest for this CPU kind")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    if args.goals:
        print(goals(args.goals))
        return
    argv = [a for a in sys.argv[1:] if a != "--fast-settings"]
    if args.fast_settings and not args.worker:
        fast_settings(args, argv)
        return
    models = model_names(args.models)
    if args.worker:
        apply_thread_policy()
        framework, mode, precision = args.worker.split(":")
        rows = measure(framework, mode, precision, models, args)
        print(json.dumps({"rows": rows, "peak": matmul_peak(framework, precision)}))
        return
    frameworks = installed() if args.frameworks == "all" else args.frameworks.split(",")
    rows, peaks = [], {}
    for precision in args.precisions.split(","):
        for framework in frameworks:
            for mode in args.modes.split(","):
                result = run_worker(framework, mode, precision, models, argv)
                rows += result["rows"]
                by_framework = peaks.setdefault(precision, {})
                by_framework[framework] = max(by_framework.get(framework, 0.0),
                                              result["peak"] / 1e9)
    meta = {"cpu": cpu_model(), "flags": cpu_flags(), "threads": args.threads,
            "date": time.strftime("%Y-%m-%d"), "batch_size": args.batch_size,
            "rounds": args.rounds, "gflop": args.gflop,
            "peak_gflop_s": {pr: max(by.values()) for pr, by in peaks.items()},
            "peak_gflop_s_by_framework": peaks}
    write_text(args.out / "meta.json", json.dumps(meta, indent=2) + "\n")  # atomic, as records
    write_text(args.out / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(render(args.out))


if __name__ == "__main__":
    main()
