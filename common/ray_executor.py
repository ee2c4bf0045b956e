"""The Ray executor (`--executor ray`, `--ray-address ADDR`): every framework job a Ray Core task.

Parent process (the Ray driver), framework-free; Ray is imported only when this executor is
chosen (common.executors.run_jobs). Each task runs in a Ray worker process on whichever node Ray
places it and starts there the same framework process as the local executor
(`python -m common.worker FRAMEWORK JOB.json`, common.launch), unchanged:

- the job's output paths (its record, a grid's CSV, a parity or probe file) point into a
  temporary folder on the node; the task returns those files' bytes with the exit status, the
  stderr tail and the node's name, and the driver writes them into the run or study folder,
  the record last and atomically (common.files). A readable record still marks a finished run,
  so resuming works as with the local executor and results need no shared file system;
- the project's code reaches every node as the runtime environment's working_dir (Ray uploads
  the tree, without what .gitignore names); each node resolves the data by the usual rules
  (--data-dir, $DLCV_DATA_DIR, its own cache, a checksummed download);
- resources: num_cpus = the job's threads, num_gpus = 1 for a GPU job (Ray sets
  CUDA_VISIBLE_DEVICES to its GPU); a CPU job gets CUDA_VISIBLE_DEVICES="" (Ray leaves it unset,
  and the job would see every GPU). With `exclusive`, the driver places each job on a node
  that runs no other job of this run (NodeAffinitySchedulingStrategy), for timing-grade runs;
- a failed job is a failed record line naming the node (max_retries=0: never retried); a node
  lost mid-run loses only its running jobs, which the next invocation runs again; Ctrl-C
  cancels the running tasks (ray.cancel(force=True)) and keeps every finished record.

Ray's rules used here: https://docs.ray.io/en/latest/ray-core/tasks.html (max_retries,
ray.cancel), .../ray-core/scheduling/resources.html (num_cpus, num_gpus and
CUDA_VISIBLE_DEVICES), .../ray-core/handling-dependencies.html (working_dir, excludes).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any, Iterable

from common.errors import UserError
from common.files import atomic_file, write_json
from common.launch import ROOT, Executor, WorkerJob, error_line

RAY_VERSION = "2.60.0"  # the version the suite was tested with (docs/scaling-out.md)
INSTALL = f'pip install "ray[default]=={RAY_VERSION}"'
# Keys of a job dict that name a file the framework process writes (common.jobs, parity, probe).
OUTPUT_KEYS = ("record_path", "csv_path", "out")
# Not uploaded to the nodes as the working_dir, beside what .gitignore names (Ray reads it).
EXCLUDES = ["results/", "benchmarks/results/", "docs/"]  # .git, .venv: Ray leaves them out
# The project's code on every node: Ray uploads this folder (without EXCLUDES and what
# .gitignore names) and starts each task in its copy.
RUNTIME_ENV = {"working_dir": str(ROOT), "excludes": EXCLUDES}
STDERR_LINES = 20  # the tail of a framework process's stderr a task returns
CONNECT_SECONDS = 5.0


def import_ray() -> Any:
    """The ray module, or UserError saying what to install. Sets, unless the user did, what Ray
    reads when it is imported: no usage stats, and no deduplication of the tasks' log lines
    (Ray would fold alike epoch lines of parallel jobs into one)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def cluster_address(executor: Executor) -> str | None:
    """The cluster to join: --ray-address, else $RAY_ADDRESS; None: start an embedded runtime."""
    return executor.address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str) -> None:
    """A HOST:PORT address must accept a TCP connection within CONNECT_SECONDS; raises
    UserError (one line) before anything is written. 'auto' and ray:// addresses are left to
    ray.init."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: give HOST:PORT of the head node "
                        "(`ray start --head` prints it)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as err:
        raise UserError(f"--ray-address {address}: no Ray head node answers there "
                        f"({err.strerror or err}); start one with `ray start --head` or fix "
                        "the address") from None


def check_executor(executor: Executor, threads: int = 1) -> None:
    """Pre-flight, before anything is written: Ray installed, a given address reachable, and
    for an embedded runtime (this machine) the `threads` of each job within its cores (a
    cluster's nodes are checked when the jobs are submitted: check_resources). Raises
    UserError."""
    if executor.kind != "ray":
        return
    import_ray()
    address = cluster_address(executor)
    if address:
        check_reachable(address)
    elif threads > (os.cpu_count() or 1):
        raise UserError(f"--threads {threads}: this machine has {os.cpu_count()} cores, and "
                        "each Ray job asks for its threads as CPUs; give fewer")


def connect(executor: Executor) -> Any:
    """ray.init: join the cluster, or start an embedded single-machine runtime. Returns ray.
    Raises UserError (one line) when Ray is missing, the address does not answer, or Ray
    refuses (e.g. another Ray version, a missing token)."""
    ray = import_ray()
    address = cluster_address(executor)
    options: dict[str, Any] = {"runtime_env": RUNTIME_ENV, "log_to_driver": True,
                               "logging_level": "ERROR"}
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, **options)
        else:
            ray.init(include_dashboard=False, **options)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001  (Ray raises many kinds: version, token, upload)
        where = f"the Ray cluster at {address}" if address else "an embedded Ray runtime"
        raise UserError(f"cannot start or join {where}: {type(err).__name__}: "
                        f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''} "
                        "(docs/scaling-out.md)") from None
    return ray


def _job_config(job: dict) -> dict:
    """A job dict's configuration: a train job's config, a grid's first point's ({} if none)."""
    return job.get("config") or (job.get("configs") or [{}])[0]


def job_device(job: dict) -> str:
    """The --device of a job dict ("cpu" when it names none, as a parity job)."""
    return _job_config(job).get("device", "cpu")


def job_threads(job: dict) -> int:
    """The CPU threads a job runs with (its num_cpus on Ray); 1 when it names none."""
    return int(_job_config(job).get("threads") or job.get("threads") or 1)


def run_task(framework: str, job: dict, job_name: str, gpu: bool,
             command: list[str] | None = None) -> dict:
    """The body of one Ray task, on the node Ray chose: run the framework process on the job
    with its outputs in a temporary folder; stream its stdout and stderr (the epoch lines)
    prefixed with the node, which Ray forwards to the driver; return
    {"exit": status, "files": {name: bytes}, "stderr": tail, "node": name, "node_id": id}."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = f"{socket.gethostname()}/{ray.util.get_node_ip_address()}/{node_id[:6]}"
    with tempfile.TemporaryDirectory(prefix="dlcv-ray-") as tmp:
        local = {key: str(Path(tmp) / Path(job[key]).name) for key in OUTPUT_KEYS
                 if job.get(key)}
        path = Path(tmp) / job_name
        path.write_text(json.dumps({**job, **local}))
        # DLCV_PARENT_PID: the framework process dies with this one (common.worker.__main__),
        # as a forced ray.cancel kills this process, and its child must not train on
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DLCV_EXECUTOR": "ray", "DLCV_NODE": node,
               "DLCV_PARENT_PID": str(os.getpid())}
        if not gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""
        argv = [*(command or [sys.executable, "-m", "common.worker"]), framework, str(path)]
        tail: deque[str] = deque(maxlen=STDERR_LINES)
        with subprocess.Popen(argv, cwd=os.getcwd(), env=env, text=True, bufsize=1,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              errors="replace") as proc:
            def read_stderr() -> None:  # the epoch lines, warnings and the error line
                for line in proc.stderr:
                    tail.append(line.rstrip("\n"))
                    print(f"[{node}] {line}", end="", file=sys.stderr, flush=True)
            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            for line in proc.stdout:  # Ray forwards a task's prints to the driver
                print(f"[{node}] {line}", end="", flush=True)
            code = proc.wait()
            reader.join()
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir()
                 if p.is_file() and p.name != job_name}
    return {"exit": code, "files": files, "stderr": list(tail), "node": node,
            "node_id": node_id}


def write_outputs(result: dict, job: dict, job_path: Path) -> None:
    """Write a task's files where the job named them (OUTPUT_KEYS; any other file beside the
    record), each atomically, the record last (a readable record marks a finished run).
    Raises UserError when a file cannot be written (a full disk, no permission)."""
    targets = {Path(job[key]).name: Path(job[key]) for key in OUTPUT_KEYS if job.get(key)}
    home = Path(job.get("record_path") or job_path).parent
    record = Path(job.get("record_path") or "").name
    for name in sorted(result["files"], key=lambda n: n == record):
        path = targets.get(name, home / name)
        try:
            with atomic_file(path, "wb") as f:
                f.write(result["files"][name])
        except OSError as err:
            raise UserError(f"cannot write {path}: {err.strerror or err}") from None


def failure_line(label: str, result: dict) -> str:
    """'<label> on <node> (exit N: <the framework's error line>)'."""
    last = error_line(result["stderr"])
    return f"{label} on {result['node']} (exit {result['exit']}{': ' + last if last else ''})"


def _alive_nodes(ray: Any) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def _fits(node: dict, threads: int, gpu: bool) -> bool:
    """Whether one node has the CPUs and (for a GPU job) the GPU a job asks for."""
    resources = node["Resources"]
    return resources.get("CPU", 0) >= threads and (not gpu or resources.get("GPU", 0) >= 1)


def check_resources(ray: Any, jobs: list[WorkerJob], gpus: list[bool]) -> None:
    """Every job must fit on one node, CPUs and GPU together (Ray would wait for ever); raises
    UserError naming the job and what to change."""
    nodes = _alive_nodes(ray)
    most_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
    for (_, label, job, _), gpu in zip(jobs, gpus):
        threads = job_threads(job)
        if any(_fits(n, threads, gpu) for n in nodes):
            continue
        if gpu and not any(n["Resources"].get("GPU", 0) >= 1 for n in nodes):
            raise UserError(f"{label}: a GPU job (--device cuda) but no Ray node has a GPU")
        raise UserError(f"{label}: --threads {threads}: no Ray node has that many CPUs"
                        f"{' and a GPU' if gpu else ''} (the most CPUs on a node: "
                        f"{most_cpus:g}); use --threads {max(1, int(most_cpus))} or fewer")


def run_on_ray(jobs: Iterable[WorkerJob], executor: Executor,
               command: list[str] | None = None) -> list[str]:
    """Run every job as a Ray task (max_retries=0) and write what each returns as it arrives;
    `command`: the framework-process command (default `python -m common.worker` on the node;
    tests give a stand-in). Returns failed-job lines as common.executors.run_jobs does; raises
    UserError as connect, check_resources and write_outputs do. Nothing to run: Ray is not
    started."""
    jobs = list(jobs)
    if not jobs:
        return []
    ray = connect(executor)
    try:
        return run_tasks(ray, jobs, executor, command)
    finally:
        ray.shutdown()


def run_tasks(ray: Any, jobs: list[WorkerJob], executor: Executor,
              command: list[str] | None = None) -> list[str]:
    """run_on_ray's loop on a connected Ray: submit (with `exclusive`, only to idle nodes),
    write each result as it arrives, show progress. Ctrl-C (or any error) first writes the
    results that have arrived, then cancels what still runs (ray.cancel(force=True)). Returns
    failed-job lines ('interrupted' last after Ctrl-C); a job left unplaced (its nodes gone)
    is a failed line too."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from tqdm.auto import tqdm

    if not jobs:
        return []
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpus = [job_device(job) == "cuda" or (job_device(job) == "auto" and cluster_gpus >= 1)
            for _, _, job, _ in jobs]
    check_resources(ray, jobs, gpus)
    task = ray.remote(max_retries=0)(run_task)
    queue = list(zip(jobs, gpus))
    running: dict[Any, tuple[WorkerJob, str | None]] = {}  # ref -> (job, node it was sent to)
    failed: list[str] = []
    done_on: Counter[str] = Counter()
    bar = tqdm(total=len(jobs), unit="job", desc="jobs", file=sys.stderr)

    def submit() -> None:
        while queue:
            (worker_job, gpu) = queue[0]
            framework, label, job, job_path = worker_job
            options: dict[str, Any] = {"num_cpus": job_threads(job), "num_gpus": int(gpu)}
            node_id = None
            if executor.exclusive:
                busy = {node for _, node in running.values()}
                free = [n["NodeID"] for n in _alive_nodes(ray)
                        if n["NodeID"] not in busy and _fits(n, job_threads(job), gpu)]
                if not free:
                    return
                node_id = free[0]
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
            queue.pop(0)
            ref = task.options(**options).remote(framework, job, job_path.name, gpu, command)
            running[ref] = (worker_job, node_id)

    def collect(ref: Any) -> None:
        (framework, label, job, job_path), _ = running.pop(ref)
        bar.update()
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the task itself raised: say why
            cause = str(err.cause if getattr(err, "cause", None) else err).strip()
            failed.append(f"{label} (the Ray task failed: {cause.splitlines()[-1][:300]})")
            return
        except ray.exceptions.RayError as err:  # the node or its worker process died
            failed.append(f"{label} (lost: {type(err).__name__}; the same command runs it "
                          "again)")
            return
        write_json(job_path, job)  # the job as given, kept as the local executor does
        write_outputs(result, job, job_path)
        if result["exit"] == 130:
            raise KeyboardInterrupt
        if result["exit"] != 0:
            failed.append(failure_line(label, result))
        done_on[result["node"]] += 1
        bar.set_postfix_str(f"{len(running)} queued or running, done per node: "
                            + ", ".join(f"{n} {c}" for n, c in sorted(done_on.items())))

    try:
        submit()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                collect(ref)
            submit()
        failed += [f"{label} (no Ray node left to run it; the same command runs it again)"
                   for (_, label, _, _), _ in queue]
    except BaseException as err:
        # keep what finished before the interrupt or error, then stop the rest
        if running:
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
            for ref in ready:
                try:
                    collect(ref)
                except (KeyboardInterrupt, UserError):
                    pass
        for ref in running:
            ray.cancel(ref, force=True)
        if not isinstance(err, KeyboardInterrupt):
            raise
        failed.append("interrupted")
    finally:
        bar.close()
    return failed
