"""Where a training step's time goes, per kernel: the evidence behind docs/timing.md's goals
section (why a framework stays below the peak, or behind the other).

    python benchmarks/profile_step.py torch vgg_block float32            # torch.profiler
    python benchmarks/profile_step.py keras vgg_block float32 --onednn   # ONEDNN_VERBOSE=1

The throughput benchmark's trainer (benchmarks/throughput.py: `--mode fast`, `--threads`, batch
64, synthetic images at the model's input size) trains one warm-up epoch of `--images` images,
then one profiled epoch. `--onednn` reruns this in a child process with ONEDNN_VERBOSE=1 (the
oneDNN primitives TensorFlow and PyTorch both call for convolutions, and TensorFlow also for
matrix products) and sums the milliseconds of each primitive (kind, implementation,
propagation, shapes) over the profiled epoch. Without it, PyTorch's own profiler
(torch.profiler, self CPU time per operator) profiles the epoch; it exists for PyTorch only.

Read the oneDNN sums of TensorFlow with care: its executor runs independent operations at the
same time on its inter-op pool, so their times overlap and can add up to more than the step.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "PROFILE START", "PROFILE END"


def onednn_summary(log: str, top: int = 15) -> str:
    """The oneDNN primitives executed between the START and END lines of an ONEDNN_VERBOSE=1
    `log`, their milliseconds summed by (kind, implementation, propagation, shapes), the `top`
    largest first, under a line with the total (ms)."""
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    inside = False
    for line in log.splitlines():
        if line.startswith((START, END)):
            inside = line.startswith(START)
            continue
        fields = line.strip().split(",")
        if not inside or not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        i = fields.index("exec")  # exec,cpu,KIND,IMPLEMENTATION,PROPAGATION,...,SHAPES,ms
        key = (fields[i + 2], fields[i + 3], fields[i + 4], fields[-2])
        total[key] += ms
        count[key] += 1
    lines = [f"oneDNN total {sum(total.values()):.1f} ms"]
    lines += [f"{ms:8.1f} ms {count[key]:4d}x  {' | '.join(key)}"
              for key, ms in total.most_common(top)]
    return "\n".join(lines)


def _profile(framework: str, model: str, precision: str, images: int, threads: int,
             torch_profiler: bool) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import throughput

    from common.specs import get_arch
    from common.splits import epoch_order
    from common.worker.process import impl

    args = argparse.Namespace(batch_size=64, threads=threads)
    train = impl(framework, "train")
    train.setup(threads, 0, False)
    arch = get_arch(model)
    x, y, data = throughput._synthetic(images, arch.input_shape)
    config = throughput._config(model, arch, "fast", precision, args)
    trainer = train.make_trainer(config, data, None, "cpu")
    trainer.train_epoch(x, y, epoch_order(images, 0, 0))
    print(START, flush=True)
    start = time.perf_counter()
    if torch_profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch(x, y, epoch_order(images, 0, 1))
    else:
        trainer.train_epoch(x, y, epoch_order(images, 0, 1))
    seconds = time.perf_counter() - start
    print(END, flush=True)
    steps = -(-images // 64)
    print(f"{framework} {model} {precision}: {images / seconds:.0f} img/s, "
          f"{seconds * 1000 / steps:.1f} ms per step of 64, {steps} steps profiled", flush=True)
    if torch_profiler:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=("keras", "torch"))
    parser.add_argument("model", help="a preset or an architecture file")
    parser.add_argument("precision", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--onednn", action="store_true", help="sum ONEDNN_VERBOSE=1's times")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "tensorflow" if args.framework == "keras" else "torch"
    if args.onednn and not args.child:
        env = {**os.environ, "ONEDNN_VERBOSE": "1"}
        proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child"], env=env,
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit("error: " + (proc.stderr.strip().splitlines() or ["failed"])[-1])
        print([line for line in proc.stdout.splitlines() if " img/s, " in line][-1])
        print(onednn_summary(proc.stdout))
        return
    if args.framework != "torch" and not args.onednn:
        raise SystemExit("error: torch.profiler profiles PyTorch only; give --onednn for keras")
    sys.path.insert(0, str(ROOT))
    _profile(args.framework, args.model, args.precision, args.images, args.threads,
             torch_profiler=not args.onednn)


if __name__ == "__main__":
    main()
