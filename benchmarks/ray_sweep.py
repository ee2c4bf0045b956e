"""Scaling-out benchmark: one 8-point digits sweep in both frameworks with the local executor, and
with the Ray executor on a one-node and a two-node Ray cluster started on this machine (one CPU
per node), each in a fresh output folder.

    python benchmarks/ray_sweep.py                       # about 6 minutes on 2 cores
    python benchmarks/ray_sweep.py --render benchmarks/results/ray

Needs Ray (pip install "ray[default]==2.60.0"). Per setting: the sweep's wall-clock seconds
(the compare.py process, from start to the printed table), the sum of the jobs' training
seconds, the per-job overhead against the local executor ((wall - local wall) / jobs for the
one-node cluster, where both run one job at a time), the nodes the records name, and the
largest difference of any record's test accuracy from the local executor's record of the same
run (the same split and initial weights). One JSON line per setting goes to
benchmarks/results/ray/runs.jsonl; --render prints the table from it.
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
from common.records import read_record

OUT = ROOT / "benchmarks" / "results" / "ray"
SWEEP = ["--task", "digits", "--framework", "both", "--sweep", "lr=0.005,0.01,0.02,0.05",
         "--sweep", "batch_size=32,64", "--epochs", "2", "--threads", "1", "--no-plots"]


def sweep(out: Path, extra: list[str]) -> tuple[float, dict]:
    """Run the sweep into `out`; (wall seconds, records by file name)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "compare.py"), *SWEEP, *extra,
                           "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(extra) or 'local'}: "
                         f"{proc.stderr.strip().splitlines()[-1]}")
    [folder] = list(out.iterdir())
    return wall, {p.name: read_record(p) for p in folder.glob("record-*.json")}


def measure(name: str, nodes: int, local: dict | None, tmp: Path) -> tuple[dict, dict]:
    """One setting: the local executor (nodes 0) or a Ray cluster of `nodes` one-CPU nodes."""
    cluster = None
    extra: list[str] = []
    if nodes:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                                "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        extra = ["--ray-address", cluster.address]
    try:
        wall, records = sweep(tmp / name, extra)
    finally:
        if cluster is not None:
            cluster.shutdown()
    gap = (max(abs(r.test_accuracy - local[k].test_accuracy) for k, r in records.items())
           if local else 0.0)
    row = {"setting": name, "nodes": nodes, "jobs": len(records), "wall_seconds": round(wall, 1),
           "train_seconds": round(sum(r.train_seconds for r in records.values()), 1),
           "nodes_named": len({r.environment.get("node") for r in records.values()}),
           "max_accuracy_difference": gap,
           "same_split": all(r.split_hash == local[k].split_hash for k, r in records.items())
           if local else True,
           "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d")}
    return row, records


def render(folder: Path) -> str:
    import pandas as pd

    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows)
    local = frame.loc[frame.nodes == 0, "wall_seconds"].iloc[0]
    frame["overhead s / job"] = ((frame.wall_seconds - local) / frame.jobs).round(2)
    # only the one-node cluster runs one job at a time, as the local executor does
    frame["overhead s / job"] = frame["overhead s / job"].astype(object).where(frame.nodes == 1, "")
    frame = frame[["setting", "jobs", "wall_seconds", "train_seconds", "nodes_named",
                   "overhead s / job", "max_accuracy_difference", "same_split"]]
    head = (f"CPU: {rows[0]['cpu']}, {rows[0]['date']}; digits, 8 points (lr x batch size) x "
            "2 frameworks, 2 epochs, 1 thread per job; Ray nodes of one CPU each on this machine")
    return head + "\n\n" + frame.to_markdown(index=False, floatfmt="g", missingval="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", metavar="FOLDER", help="print the table of a results folder")
    args = parser.parse_args()
    if args.render:
        print(render(Path(args.render)))
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        row, local = measure("local executor", 0, None, Path(tmp))
        rows.append(row)
        for name, nodes in (("ray, 1 node", 1), ("ray, 2 nodes", 2)):
            rows.append(measure(name, nodes, local, Path(tmp))[0])
            print(rows[-1], flush=True)
    write_text(OUT / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    print(render(OUT))


if __name__ == "__main__":
    main()
