"""Contention benchmark: each framework's training time alone and beside a CPU-burning process,
with the suite's thread policy (common.machine.THREAD_POLICY) and with the runtimes' defaults
(DLCV_THREAD_POLICY=off), alternating A/B within one invocation.

    python benchmarks/contention.py [--data-dir DIR] [--train-size 1500] [--rounds 1]
    python benchmarks/contention.py --render benchmarks/results/contention

Each measurement is one `compare.py --task cifar10 --epochs 1` run of one framework with 2
threads; the burner is one Python process spinning on one core (half of a 2-core machine), so a
time proportional to the CPU share left would be 2x the idle time. The records (one JSON line
per run, with the CPU model) go to benchmarks/results/contention/runs.jsonl; --render prints the
table from them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.files import write_text
from common.machine import cpu_model
from common.records import run_records

OUT = ROOT / "benchmarks" / "results" / "contention"
BURN = "while True: pass"


def one_run(framework: str, policy: bool, burner: bool, args) -> dict:
    env = {**os.environ}
    if not policy:
        env["DLCV_THREAD_POLICY"] = "off"
    burn = subprocess.Popen([sys.executable, "-c", BURN]) if burner else None
    try:
        time.sleep(0.5 if burner else 0)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, str(ROOT / "compare.py"), "--task", "cifar10", "--framework",
                   framework, "--epochs", "1", "--train-size", str(args.train_size), "--val-size", "500",
                   "--threads", "2", "--no-plots", "--out", tmp]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"error: {framework}: {proc.stderr.strip().splitlines()[-1]}")
            record = run_records(next(Path(tmp).iterdir()))[0]
    finally:
        if burn:
            burn.kill()
            burn.wait()
    return {"framework": framework, "policy": "suite" if policy else "runtime default",
            "burner": burner, "train_seconds": round(record.train_seconds, 2),
            "busy": bool(record.contention and record.contention["busy"]),
            "others_during": record.contention and record.contention["others_during"],
            "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"),
            "train_size": args.train_size}


def render(folder: Path) -> str:
    import pandas as pd

    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    # A run "alone" that another process disturbed, or a run beside the burner that a third
    # process disturbed, measures neither condition: it is left out (and counted).
    kept = [r for r in rows if (r["others_during"] or 0) <= (0.6 if r["burner"] else 0.1)]
    frame = pd.DataFrame(kept)
    table = frame.groupby(["framework", "policy", "burner"])["train_seconds"].median().unstack()
    table.columns = ["alone s", "beside a burner s"]
    table["slowdown"] = (table["beside a burner s"] / table["alone s"]).round(2)
    head = (f"CPU: {rows[0]['cpu']}, {rows[0]['date']}; cifar10_cnn, {rows[0]['train_size']} "
            f"images (validation 500), 1 epoch, 2 threads, median of {len(kept)} runs "
            f"({len(rows) - len(kept)} disturbed by a third process left out)")
    return head + "\n\n" + table.reset_index().to_markdown(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--train-size", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--render", type=Path)
    args = parser.parse_args()
    if args.render:
        print(render(args.render))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for _ in range(args.rounds):
        for framework in args.frameworks.split(","):
            for burner in (False, True):
                for policy in (True, False):  # alternating A/B
                    rows.append(one_run(framework, policy, burner, args))
                    print(json.dumps(rows[-1]), flush=True)
    write_text(OUT / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))  # atomic
    print(render(OUT))


if __name__ == "__main__":
    main()
