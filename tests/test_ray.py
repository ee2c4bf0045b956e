"""The Ray executor (common.ray_executor) on one 2-core machine, no cluster and no GPU:
scheduling, CUDA_VISIBLE_DEVICES, failures, Ctrl-C and exclusive placement with a stand-in
worker (tests/standin_worker.py) on an embedded runtime with two logical GPUs; then a real
digits sweep on a two-node cluster (ray.cluster_utils.Cluster) whose records equal the local
executor's. Ray's session files and token stay in a temporary folder, usage stats are off,
traffic stays on the loopback address, and every Ray process a test starts is stopped."""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import main_error, one_line_error, run_compare

from common.errors import UserError
from common.launch import Executor
from common.records import read_record

ray = pytest.importorskip("ray", reason='Ray is optional: pip install "ray[default]==2.60.0"')

from common import ray_executor  # noqa: E402  (after the skip: it is only useful with Ray)

STANDIN = [sys.executable, str(Path(__file__).with_name("standin_worker.py"))]


@pytest.fixture(scope="module")
def ray_home():
    """HOME (Ray's token), RAY_TMPDIR (its sessions) in one short temporary folder (Unix socket
    paths must stay under 108 bytes), usage stats off; restored and removed afterwards."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED",
                                            "RAY_ADDRESS")}
    os.environ.update(HOME=folder, RAY_TMPDIR=folder, RAY_USAGE_STATS_ENABLED="0")
    os.environ.pop("RAY_ADDRESS", None)
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(folder, ignore_errors=True)


def test_missing_ray_and_unreachable_address_are_one_line(capsys, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    message = main_error(capsys, "--task", "digits", "--executor", "ray", "--out", str(out))
    assert 'pip install "ray[default]==2.60.0"' in message
    monkeypatch.undo()
    proc = run_compare("--task", "digits", "--ray-address", "127.0.0.1:9", "--out", str(out))
    assert "--ray-address 127.0.0.1:9: no Ray head node answers there" in one_line_error(proc)
    assert not out.exists()


SWEEP = ("--task", "digits", "--framework", "torch", "--sweep", "lr=0.01,0.05", "--epochs", "1",
         "--train-size", "200", "--threads", "1", "--no-plots")


def test_a_sweep_on_a_two_node_cluster_equals_the_local_one(ray_home, tmp_path):
    """Two nodes of one CPU each, started inside the test; the driver joins with --ray-address.
    Both runs of the sweep land on different nodes and give the local executor's records."""
    from ray.cluster_utils import Cluster

    local = run_compare(*SWEEP, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr[-2000:]
    # On this machine's own address: Ray resolves a 127.0.0.1 head address to that one anyway
    # (ray._private.services.resolve_ip_for_localhost), and Linux routes it over loopback.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                            "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        remote = run_compare(*SWEEP, "--ray-address", cluster.address,
                             "--out", str(tmp_path / "ray"))
    finally:
        cluster.shutdown()
    assert remote.returncode == 0, remote.stderr[-3000:]
    [local_dir], [ray_dir] = (list((tmp_path / k).iterdir()) for k in ("local", "ray"))
    assert local_dir.name == ray_dir.name  # the same study, by its arguments
    mine = {p.name: read_record(p) for p in ray_dir.glob("record-*.json")}
    theirs = {p.name: read_record(p) for p in local_dir.glob("record-*.json")}
    assert set(mine) == set(theirs) and len(mine) == 2
    for name, record in mine.items():
        assert round(record.test_accuracy, 4) == round(theirs[name].test_accuracy, 4)
        assert record.split_hash == theirs[name].split_hash
        assert record.initial_weights_hash is not None
        assert record.initial_weights_hash == theirs[name].initial_weights_hash
        assert record.environment["executor"] == "ray"
    assert len({r.environment["node"] for r in mine.values()}) == 2  # one job per node


@pytest.fixture(scope="module")
def local_ray(ray_home):
    """An embedded runtime: 2 CPUs, 2 logical GPUs, one node."""
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, runtime_env=ray_executor.RUNTIME_ENV,
             logging_level="ERROR")
    yield ray
    ray.shutdown()


def standin_job(folder: Path, name: str, device: str = "cpu", **extra) -> tuple:
    """A WorkerJob for the stand-in worker, its record in `folder`."""
    job = {"kind": "train", "name": name, "config": {"device": device, "threads": 1},
           "record_path": str(folder / f"record-{name}.json"), "starts": str(folder / "starts"),
           **extra}
    return ("torch", f"torch {name}", job, folder / f"job-{name}.json")


def test_jobs_run_two_at_a_time_with_their_devices(local_ray, tmp_path):
    # the two GPU jobs first: 2 CPUs and 2 GPUs free, so they run at the same time
    jobs = [standin_job(tmp_path, f"gpu{i}", "cuda", sleep=3) for i in range(2)]
    jobs += [standin_job(tmp_path, f"cpu{i}", sleep=1) for i in range(2)]
    assert ray_executor.run_tasks(local_ray, jobs, Executor("ray"), STANDIN) == []
    records = {p.stem[len("record-"):]: json.loads(p.read_text())
               for p in tmp_path.glob("record-*.json")}
    assert set(records) == {"gpu0", "gpu1", "cpu0", "cpu1"}
    gpu0, gpu1 = records["gpu0"], records["gpu1"]
    assert gpu0["started"] < gpu1["ended"] and gpu1["started"] < gpu0["ended"]
    assert {gpu0["cuda"], gpu1["cuda"]} == {"0", "1"}  # one GPU each, not the same one
    assert records["cpu0"]["cuda"] == records["cpu1"]["cuda"] == ""  # none for CPU jobs
    # one CPU per job (--threads 1) on 2 CPUs: never more than two at once
    times = sorted((r["started"], r["ended"]) for r in records.values())
    for start, _ in times:
        assert sum(s <= start < e for s, e in times) <= 2
    assert all((tmp_path / f"job-{name}.json").is_file() for name in records)


def test_a_gpu_job_without_a_gpu_node_is_one_line(ray_home, tmp_path):
    """check_resources on a node without GPUs (the embedded runtime's own view is not needed:
    the nodes are given as Ray lists them)."""
    class NoGpuRay:
        @staticmethod
        def nodes():
            return [{"Alive": True, "NodeID": "n1", "Resources": {"CPU": 8.0}}]

    job = standin_job(tmp_path, "g", "cuda")
    with pytest.raises(UserError, match="torch g: a GPU job .* no Ray node has a GPU"):
        ray_executor.check_resources(NoGpuRay, [job], [True])
    # CPUs on one node, the GPU on another: no node fits both
    class SplitRay:
        @staticmethod
        def nodes():
            return [{"Alive": True, "NodeID": "n1", "Resources": {"CPU": 8.0}},
                    {"Alive": True, "NodeID": "n2", "Resources": {"CPU": 2.0, "GPU": 1.0}}]

    job[2]["config"]["threads"] = 4
    with pytest.raises(UserError, match="--threads 4: no Ray node has that many CPUs and a GPU"):
        ray_executor.check_resources(SplitRay, [job], [True])


def test_a_failed_job_is_one_line_naming_the_node_and_never_retried(local_ray, tmp_path):
    jobs = [standin_job(tmp_path, "bad", exit=3, error="no data here"),
            standin_job(tmp_path, "good")]
    failed = ray_executor.run_tasks(local_ray, jobs, Executor("ray"), STANDIN)
    assert len(failed) == 1
    assert failed[0].startswith("torch bad on ") and "exit 3" in failed[0], failed
    assert "error: torch: no data here" in failed[0]
    assert not (tmp_path / "record-bad.json").exists()
    assert (tmp_path / "record-good.json").is_file()
    starts = (tmp_path / "starts").read_text().split()
    assert starts.count("bad") == 1  # max_retries=0


def test_exclusive_runs_one_job_per_node_at_a_time(local_ray, tmp_path):
    jobs = [standin_job(tmp_path, f"x{i}", sleep=1) for i in range(2)]
    assert ray_executor.run_tasks(local_ray, jobs, Executor("ray", exclusive=True), STANDIN) == []
    a, b = sorted((json.loads(p.read_text()) for p in tmp_path.glob("record-*.json")),
                  key=lambda r: r["started"])
    assert a["ended"] <= b["started"]


def test_ctrl_c_cancels_running_jobs_and_keeps_finished_records(local_ray, tmp_path):
    # "slow" outlives the wait for "quick": the interrupt comes while it runs (it is cancelled)
    jobs = [standin_job(tmp_path, "quick"), standin_job(tmp_path, "slow", sleep=900)]

    def interrupt_when_quick_is_done() -> None:  # Ctrl-C in the driver, once one job finished
        for _ in range(600):
            if (tmp_path / "record-quick.json").exists():
                break
            time.sleep(0.1)
        _thread.interrupt_main()

    # Ctrl-C raises KeyboardInterrupt, as in a terminal: a background job of a non-interactive
    # shell (pytest run with &) inherits SIGINT ignored, and interrupt_main then does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt_when_quick_is_done, daemon=True).start()
        failed = ray_executor.run_tasks(local_ray, jobs, Executor("ray"), STANDIN)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert failed == ["interrupted"]
    assert (tmp_path / "record-quick.json").is_file()
    assert not (tmp_path / "record-slow.json").exists()
    pid = int(next(line.split()[1] for line in (tmp_path / "starts").read_text().splitlines()
                   if line.startswith("slow")))
    for _ in range(50):  # the framework process dies with its task
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the cancelled job's process still runs"


def test_more_threads_than_any_node_has_is_one_line(local_ray, tmp_path):
    job = standin_job(tmp_path, "big")
    job[2]["config"]["threads"] = 3
    with pytest.raises(UserError, match="--threads 3: no Ray node has that many CPUs"):
        ray_executor.run_tasks(local_ray, [job], Executor("ray"), STANDIN)


def test_more_threads_than_this_machine_has_is_refused_before_anything_is_written(capsys,
                                                                                   tmp_path):
    out = tmp_path / "out"
    cores = os.cpu_count()
    message = main_error(capsys, "--task", "digits", "--executor", "ray", "--threads",
                         str(cores + 1), "--out", str(out))
    assert f"--threads {cores + 1}: this machine has {cores} cores" in message
    assert not out.exists()
