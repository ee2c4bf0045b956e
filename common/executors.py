"""Where framework jobs run: the one entry of every place that runs them (a comparison's
frameworks and repeats, a sweep, a grid, the parity check), from the parent process.

`run_jobs(jobs, executor)` hands the jobs to the executor the plan names (--executor):
- local (the default): one after the other on this machine, each in its own process
  (common.launch.run_local);
- ray: each a Ray Core task on a Ray cluster, the same framework process on whichever node
  Ray places it (common.ray_executor; Ray is imported only then).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np

from common.errors import UserError
from common.frameworks import BOTH, reference
from common.launch import LOCAL, Executor, WorkerJob, call_worker, run_local
from common.init import initial_weights
from common.parity import (FLOAT64_TOLERANCE, TOLERANCE, case_arch, compare_outputs,
                           first_difference)


def run_jobs(jobs: Iterable[WorkerJob], executor: Executor = LOCAL) -> list[str]:
    """Run framework jobs, each in its own process: the one entry of comparisons, repeats and
    studies. `jobs` may be a generator (it can print progress or skip finished work as it
    goes). Returns a line per failed job ('<label> (exit N)'), and 'interrupted' last when
    Ctrl-C, or a framework process interrupted (exit 130), stopped the run; the jobs not yet
    finished then are not run (their records are absent, so the same command resumes them)."""
    if executor.kind == "ray":
        from common.ray_executor import run_on_ray  # Ray is imported only when chosen

        return run_on_ray(jobs, executor)
    return run_local(jobs)


def run_parity(cases: list[dict], frameworks: tuple[str, ...] = BOTH,
               only: dict[str, tuple[str, ...]] | None = None,
               executor: Executor = LOCAL) -> dict[str, dict]:
    """Each framework computes every case (or, per `only`, the named ones) in its own process;
    per case: the reference (torch when present), its dtype, each parameter count, and per other
    framework that computed it its max abs (`max_abs_diff`) and relative (`max_rel_diff`)
    differences from the reference and the first layer-table row whose output differs beyond
    the dtype's tolerance (`first_difference`, None if none; common.parity). On the local
    executor the frameworks run at once; on Ray each is a task (raises UserError if one fails)."""
    only = only or {}

    def computes(framework: str, case: dict) -> bool:
        return case["name"] in only.get(framework, (case["name"],))

    outputs: dict[str, dict[str, np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="dlcv-parity-") as tmp:
        def job(framework: str) -> dict:
            return {"kind": "parity", "cases": [c for c in cases if computes(framework, c)],
                    "out": str(Path(tmp) / f"{framework}.npz")}

        if executor.kind == "local":
            # All at once: a parity job runs one thread, and Keras on JAX spends most of its
            # time compiling each eager op, single-threaded (the registry on all four
            # frameworks, 2 cores: 159 s one after the other, 132 s at once).
            with ThreadPoolExecutor(len(frameworks)) as pool:
                for future in [pool.submit(call_worker, fw, job(fw)) for fw in frameworks]:
                    future.result()  # the first failure (a one-line UserError) is raised
        else:
            failed = run_jobs([(fw, fw, job(fw), Path(tmp) / f"job-{fw}.json")
                               for fw in frameworks], executor)
            if failed:
                raise UserError("parity check failed: " + ", ".join(failed))
        for framework in frameworks:
            with np.load(Path(tmp) / f"{framework}.npz") as data:
                outputs[framework] = {k: data[k] for k in data.files}
    result = {}
    for case in cases:
        prefix = case["name"] + "|"
        halves = {fw: {k[len(prefix):]: v for k, v in outputs[fw].items() if k.startswith(prefix)}
                  for fw in frameworks if computes(fw, case)}
        params = {fw: int(h.pop("params")) for fw, h in halves.items()}
        ref = reference(frameworks)
        others = {fw: h for fw, h in halves.items() if fw != ref}
        start = initial_weights(case_arch(case), tuple(case["input_shape"]),
                                case["num_classes"], case["seed"])
        tolerance = FLOAT64_TOLERANCE if case.get("dtype") == "float64" else TOLERANCE
        result[case["name"]] = {
            "reference": ref, "params": params, "dtype": case.get("dtype", "float32"),
            "max_abs_diff": {fw: compare_outputs(h, halves[ref]) for fw, h in others.items()},
            "max_rel_diff": {fw: compare_outputs(h, halves[ref], relative=True, initial=start)
                             for fw, h in others.items()},
            # the first layer-table row whose activations differ beyond the case's tolerance
            "first_difference": {fw: first_difference(h, halves[ref], tolerance)
                                 for fw, h in others.items()}}
    return result
