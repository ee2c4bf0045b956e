"""Throughput across the registry: training and inference images/s of every preset, in every
installed framework, mode and precision, and the FLOP/s that is against the machine's measured
peak for that precision.

    python benchmarks/throughput.py                       # the default subset (< 10 min, 2 cores)
    python benchmarks/throughput.py --frameworks all --modes reference,fast
    python benchmarks/throughput.py --models my_net.toml  # any architecture file (--model FILE)
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

FLOPs per image: 3 x the forward FLOPs of the convolutions and dense layers for training, 1 x
for inference (common.specs.forward_flops). The peak of a precision is a measured matrix
multiply in PyTorch (n=2048, best of 5, the same threads): float32 for float32 runs, bfloat16 for
mixed_bfloat16 runs (fast only where the CPU has AVX512-BF16 or AMX; on other CPUs bfloat16 is
emulated and its peak is low, which the table then shows).

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
from common.specs import PRESETS, forward_flops, get_arch
from common.splits import epoch_order

OUT = ROOT / "benchmarks" / "results" / "throughput"
PRECISIONS = ("float32", "mixed_bfloat16")
DEFAULT_MODELS = "all"
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


def measure(framework: str, mode: str, precision: str, models: list[str], args) -> list[dict]:
    """In this (the framework's) process: every model's rates, or 'busy' rows."""
    from common.data.prepare import PreparedData
    from common.worker.process import impl

    train = impl(framework, "train")
    train.setup(args.threads, 0, mode == "reference")
    rows = []
    for name in models:
        arch = get_arch(name)  # a preset, or an architecture file (--model FILE)
        shape = arch.input_shape
        if shape is None:
            raise SystemExit(f"error: {name}: no input size; add an `input = [H, W, C]` line")
        flops = forward_flops(arch, shape, NUM_CLASSES)
        n = images_for(flops, args.gflop)
        rng = np.random.default_rng(0)
        x = rng.random((n, *shape), dtype=np.float32)
        y = rng.integers(0, NUM_CLASSES, n).astype(np.int64)
        data = PreparedData(x, y, x[:64], y[:64], x[:64], y[:64], shape, NUM_CLASSES,
                            tuple(map(str, range(NUM_CLASSES))), "synthetic")
        cfg = RunConfig(task="synthetic", model=name, arch=arch,
                        optimizer=resolve_optimizer("sgd"), epochs=1, batch_size=args.batch_size,
                        threads=args.threads, device="cpu", mode=mode, precision=precision,
                        deterministic=mode == "reference")
        trainer = train.make_trainer(cfg, data, None, "cpu")
        trainer.train_epoch(x, y, epoch_order(n, 0, 0))  # warm-up: tracing, allocator, caches
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
        rows.append({"model": name, "framework": framework, "mode": mode, "precision": precision,
                     "images": n, "train_img_s": statistics.median(train_rates),
                     "infer_img_s": statistics.median(infer_rates),
                     "train_gflop_per_image": 3 * flops / 1e9,
                     "busy": monitor.result.busy, "contention": monitor.result.to_dict()})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def peak(precision: str, threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a PyTorch matrix multiply in the precision's compute type, best of `repeats`."""
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "mixed_bfloat16" else torch.float32
    a, b = (torch.rand(n, n).to(dtype) for _ in range(2))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


# --fast-settings: each side's candidate --mode fast options, measured against each other.
FAST_CANDIDATES = {"torch": [{"channels_last": True}, {"channels_last": False}],
                   "keras": [{"jit_compile": "auto"}, {"jit_compile": False}]}
FAST_MODEL = "cifar10_cnn"
NOISE = 0.03  # relative: two runs of one setting differ by up to ~2% here


def run_worker(framework: str, mode: str, precision: str, models: list[str], argv: list[str],
               options: dict | None = None) -> list[dict]:
    """One measuring process (a Keras backend is fixed per process); its rows."""
    env = {**os.environ, "KERAS_BACKEND": FRAMEWORKS[framework].keras_backend or ""}
    if options is not None:
        env[FAST_OPTIONS_ENV] = json.dumps(options)
    cmd = [sys.executable, __file__, *argv, "--models", ",".join(models), "--worker",
           f"{framework}:{mode}:{precision}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"error: {framework} {mode} {precision}: "
                         + (proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
            row = run_worker(side, "fast", "float32", [FAST_MODEL], argv, options)[0]
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


def render(folder: Path) -> str:
    """The table of the records in `folder` (runs.jsonl, peaks.json)."""
    import pandas as pd

    meta = json.loads((folder / "meta.json").read_text())
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    table = []
    for r in rows:
        peak_flops = meta["peak_gflop_s"][r["precision"]]
        gflops = r["train_img_s"] * r["train_gflop_per_image"]
        table.append({
            "model": r["model"], "framework": r["framework"], "mode": r["mode"],
            "precision": r["precision"],
            "train img/s": "busy" if r["busy"] else f"{r['train_img_s']:.0f}",
            "inference img/s": "busy" if r["busy"] else f"{r['infer_img_s']:.0f}",
            "train GFLOP/s": "busy" if r["busy"] else f"{gflops:.1f}",
            "% of peak": "busy" if r["busy"] else f"{100 * gflops / peak_flops:.0f}%"})
    head = (f"CPU: {meta['cpu']} ({', '.join(meta['flags']) or 'no flags read'}), "
            f"{meta['threads']} threads, {meta['date']}; batch {meta['batch_size']}, median of "
            f"{meta['rounds']} epochs of about {meta['gflop']:g} GFLOP; peak (PyTorch matmul, "
            "n=2048): " + ", ".join(f"{p} {v:.0f} GFLOP/s"
                                    for p, v in meta["peak_gflop_s"].items()))
    return head + "\n\n" + pd.DataFrame(table).to_markdown(index=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="all, or a comma list of presets and architecture files (TOML, as "
                   "--model FILE; its own input size, from its `input` line)")
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
    p.add_argument("--out", type=Path, default=OUT,
                   help="where the records go (default: the committed ones, replaced)")
    p.add_argument("--fast-settings", action="store_true",
                   help="measure --mode fast's candidates, record the fastest for this CPU kind")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.render:
        print(render(args.render))
        return
    argv = [a for a in sys.argv[1:] if a != "--fast-settings"]
    if args.fast_settings and not args.worker:
        fast_settings(args, argv)
        return
    models = list(PRESETS) if args.models == "all" else args.models.split(",")
    if args.worker:
        apply_thread_policy()
        framework, mode, precision = args.worker.split(":")
        print(json.dumps(measure(framework, mode, precision, models, args)))
        return
    frameworks = installed() if args.frameworks == "all" else args.frameworks.split(",")
    rows = []
    for precision in args.precisions.split(","):
        for framework in frameworks:
            for mode in args.modes.split(","):
                rows += run_worker(framework, mode, precision, models, argv)
    meta = {"cpu": cpu_model(), "flags": cpu_flags(), "threads": args.threads,
            "date": time.strftime("%Y-%m-%d"), "batch_size": args.batch_size,
            "rounds": args.rounds, "gflop": args.gflop,
            "peak_gflop_s": {pr: peak(pr, args.threads) / 1e9
                             for pr in args.precisions.split(",")}}
    write_text(args.out / "meta.json", json.dumps(meta, indent=2) + "\n")  # atomic, as records
    write_text(args.out / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(render(args.out))


if __name__ == "__main__":
    main()
