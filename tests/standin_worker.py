"""A stand-in for `python -m common.worker FRAMEWORK JOB.json` in the executor tests: it trains
nothing, and ends with the Ray task that started it, as the worker does. It records when it
started, that it ran (one line per start in `job["starts"]`), sleeps `job["sleep"]` seconds
printing a line per second, then writes a record with what it saw (CUDA_VISIBLE_DEVICES, node,
pid, start and end time) to `job["record_path"]`, or prints `job["error"]` as the worker's one
error line and exits with `job["exit"]`."""

from __future__ import annotations

import json
import os
import sys
import time


def main(framework: str, job_path: str) -> int:
    sys.path.insert(0, os.getcwd())  # the project (a Ray task's working_dir)
    from common.worker.process import die_with_parent

    die_with_parent(os.environ.get("DLCV_PARENT_PID"))  # as common.worker does
    job = json.loads(open(job_path).read())
    started = time.time()
    with open(job["starts"], "a") as f:
        f.write(f"{job['name']} {os.getpid()}\n")
    for second in range(int(job.get("sleep", 0))):
        print(f"{framework} {job['name']} second {second + 1}", flush=True)
        time.sleep(1)
    time.sleep(job.get("sleep", 0) % 1)
    if job.get("exit"):
        print(f"error: {framework}: {job['error']}", file=sys.stderr)
        return job["exit"]
    with open(job["record_path"], "w") as f:
        json.dump({"name": job["name"], "framework": framework, "pid": os.getpid(),
                   "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                   "node": os.environ.get("DLCV_NODE"), "started": started,
                   "ended": time.time()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
