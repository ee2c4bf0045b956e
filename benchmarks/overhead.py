"""Throughput against the machine: images/s of every installed framework in both modes, the
FLOP/s that is as a fraction of the machine's matrix-multiply peak, and the suite's overhead
over a bare loop.

    python benchmarks/overhead.py [--framework all] [--modes reference,fast] [--images 4096]
                                  [--batch-size 64] [--model cifar10_cnn]

For each framework (keras, keras-jax, keras-torch, torch) and mode, in its own process with the
suite's thread and determinism settings for that mode, the same model (same spec, same batch
size) is trained on in-memory data by
- the suite: `{keras,torch}_impl.train` trainer's `train_epoch`, with its progress bar, per-batch
  timer and the epoch order from common.splits;
- a bare loop: PyTorch's textbook loop over shuffled index slices, and Keras' plain
  `model.fit(x, y, shuffle=True)`.
Measurements alternate suite / bare after a warm-up epoch each; the median of `--rounds` is kept
and every round is printed (Keras' plain `fit(x_numpy)` flips between a slow and a fast mode from
one call to the next on 2 cores; the suite feeds Keras so that it stays in the fast one).
The ratio suite / bare should stay above 0.97. With `--augment flip,crop` the suite's epoch also
augments every batch (the bare loop does not), so the ratio is then the cost of augmentation.
FLOPs per image = 3 x the forward FLOPs of the convolutions and dense layers from the layer table
(common.specs.forward_flops); the peak is NumPy's float32 matrix multiply (n=2048, best of 5) in
the parent process, with the same thread count.
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

from common.augment import parse_augment
from common.config import MODES, RunConfig
from common.errors import UserError
from common.frameworks import FRAMEWORKS, parse_frameworks
from common.optim import resolve_optimizer
from common.specs import forward_flops, get_preset
from common.splits import epoch_order
from common.tasks import TASKS
from common.data.prepare import PreparedData
from common.worker.process import impl

INPUT_SHAPES = {t.model: t.input_shape for t in TASKS.values()}


def synthetic(n: int, shape: tuple[int, int, int]) -> PreparedData:
    rng = np.random.default_rng(0)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return PreparedData(x, y, x[:512], y[:512], x[:512], y[:512], shape, 10,
                        tuple(map(str, range(10))), "synthetic")


def _bare_torch(trainer, x: np.ndarray, y: np.ndarray, batch_size: int, epoch: int):
    """The pytorch/examples loop: shuffle, slice, forward, loss, backward, step."""
    import torch
    import torch.nn.functional as F

    model, optimizer = trainer.model, trainer.optimizer
    xt, yt = trainer._tensor(x), trainer._tensor(y)
    model.train()
    perm = torch.randperm(len(xt))
    for i in range(0, len(xt), batch_size):
        idx = perm[i:i + batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        optimizer.step()


def _bare_keras(trainer, x: np.ndarray, y: np.ndarray, batch_size: int, epoch: int):
    trainer.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)


def worker(framework: str, mode: str, args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    train = impl(framework, "train")
    bare = _bare_torch if framework == "torch" else _bare_keras
    cfg = RunConfig(task="synthetic", model=args.model, arch=get_preset(args.model),
                    optimizer=resolve_optimizer("sgd"), epochs=1, batch_size=args.batch_size,
                    threads=args.threads, device="cpu", augment=parse_augment(args.augment),
                    mode=mode, deterministic=mode == "reference")
    train.setup(cfg.threads, cfg.seed, cfg.deterministic)
    data = synthetic(args.images, INPUT_SHAPES[args.model])
    trainer = train.make_trainer(cfg, data, None, "cpu")
    x, y = data.x_train, data.y_train
    n_batches = -(-len(x) // args.batch_size)

    def suite(epoch: int) -> None:
        with open(os.devnull, "w") as devnull:
            bar = tqdm(total=n_batches, file=devnull, mininterval=0.1)
            trainer.train_epoch(x, y, epoch_order(len(x), 0, epoch), bar)
            bar.close()

    def timed(fn, epoch: int) -> float:
        start = time.perf_counter()
        fn(epoch)
        return len(x) / (time.perf_counter() - start)

    suite(0)  # warm-up: tracing, allocator, caches
    bare(trainer, x, y, args.batch_size, 0)
    rates = {"suite": [], "bare": []}
    for r in range(1, args.rounds + 1):
        rates["suite"].append(timed(suite, r))
        rates["bare"].append(timed(lambda e: bare(trainer, x, y, args.batch_size, e), r))
    suite_rate, bare_rate = statistics.median(rates["suite"]), statistics.median(rates["bare"])
    return {"framework": framework, "mode": mode, "suite_img_s": suite_rate,
            "bare_img_s": bare_rate, "ratio": suite_rate / bare_rate, "rounds": rates}


def sgemm_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of NumPy's float32 matrix multiply (its BLAS, `threads` threads), best of `repeats`."""
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cifar10_cnn", choices=tuple(INPUT_SHAPES))
    p.add_argument("--images", type=int, default=4096, help="images per timed epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--augment", help="augmentations applied in the suite's epoch, e.g. flip,crop")
    p.add_argument("--framework", default="all",
                   help="all (default: every installed one), both, or a comma list of "
                   + ", ".join(FRAMEWORKS))
    p.add_argument("--modes", default=",".join(MODES), help="comma list of " + ", ".join(MODES))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        framework, mode = args.worker.split(":")
        print(json.dumps(worker(framework, mode, args)))
        return
    try:
        frameworks = parse_frameworks(args.framework)
    except UserError as err:
        p.error(f"--framework: {err}")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes: a comma list of {', '.join(MODES)}")
    flops = 3 * forward_flops(get_preset(args.model), INPUT_SHAPES[args.model], 10)
    peak = sgemm_peak(args.threads)
    rows = []
    for framework in frameworks:  # one process each: a Keras backend is fixed per process
        for mode in modes:
            env = {**os.environ, "KERAS_BACKEND": FRAMEWORKS[framework].keras_backend or ""}
            cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", f"{framework}:{mode}"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                                 env=env).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"model {args.model}: {flops / 1e9:.3f} GFLOP per training image (3 x forward); "
          f"{args.images} images/epoch, batch {args.batch_size}, {args.threads} threads, median "
          f"of {args.rounds} rounds, suite augmentation: {args.augment or 'none'}; sgemm peak "
          f"{peak / 1e9:.0f} GFLOP/s (NumPy float32, n=2048)\n")
    print("| framework | mode | suite img/s | GFLOP/s | % of sgemm peak | bare loop img/s "
          "| suite / bare | rounds: suite | rounds: bare |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rounds = {k: ", ".join(f"{v:.0f}" for v in r["rounds"][k]) for k in ("suite", "bare")}
        gflops = r["suite_img_s"] * flops / 1e9
        print(f"| {r['framework']} | {r['mode']} | {r['suite_img_s']:.0f} | {gflops:.0f} | "
              f"{100 * gflops * 1e9 / peak:.0f}% | {r['bare_img_s']:.0f} | {r['ratio']:.3f} | "
              f"{rounds['suite']} | {rounds['bare']} |")


if __name__ == "__main__":
    main()
