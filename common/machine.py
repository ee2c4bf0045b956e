"""How busy the machine is: the CPU share other processes take, read from /proc/stat.

Used on both sides of the process boundary, and imports no framework:
- the parent (compare.py) reads the load at start, so `--threads` defaults to the free cores;
- the worker wraps training in a LoadMonitor, so every record says whether its time was taken on
  a shared CPU (and the report refuses to call a framework faster when it was).

A busy machine changes the answer to "which framework is faster": with another process on a core,
PyTorch's OpenMP threads spin-wait for each other and an epoch took 3-20x longer here, while
Keras/TF's thread pools degraded under 2x (issue 22). THREAD_POLICY is the runtime setting the
worker applies before any framework is imported, the same for every framework.

Linux only (/proc/stat); elsewhere every reading is None and nothing is flagged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# A run whose machine had more than this share of its CPU taken by other processes while it
# trained is flagged "busy" (a share of all cores, 0..1): below it, timing noise dominates.
BUSY_SHARE = 0.10
# The sampler's period during training; before it, the window sampled at the start of training
# when the setup since LoadMonitor's `since` mark was shorter (or no mark was given).
SAMPLE_SECONDS = 0.5

# OpenMP runtimes (PyTorch's libgomp, and Intel's libiomp where a build links it; TensorFlow's
# and XLA's own pools ignore these) let idle threads sleep at once instead of spinning: a
# spinning thread holds a core that another process needs, and with a busy machine each
# parallel region waits for a descheduled spinner. `setdefault`: a user's own value wins;
# DLCV_THREAD_POLICY=off applies none (to measure the runtime defaults).
THREAD_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
THREAD_POLICY_ENV = "DLCV_THREAD_POLICY"


def apply_thread_policy() -> dict[str, str]:
    """Set THREAD_POLICY in os.environ (before a framework is imported); returns the values in
    force, for the record ({} when DLCV_THREAD_POLICY=off)."""
    if os.environ.get(THREAD_POLICY_ENV, "").lower() == "off":
        return {}
    for key, value in THREAD_POLICY.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in THREAD_POLICY}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (e.g. 'AMD EPYC 9R14'), else platform's."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_kind() -> str:
    """The CPU family `--mode fast` is tuned for (common/fast_settings.json): intel-amx,
    intel-avx512, amd-avx512 (Zen 4), amd-avx2 (Zen 2/3), or other; from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "other"
    vendor = "intel" if "GenuineIntel" in text else "amd" if "AuthenticAMD" in text else ""
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith("flags")), []))
    if vendor == "intel" and "amx_bf16" in flags:
        return "intel-amx"
    if vendor and "avx512f" in flags:
        return f"{vendor}-avx512"
    if vendor and "avx2" in flags:
        return f"{vendor}-avx2"
    return "other"


FAST_SETTINGS = Path(__file__).resolve().parent / "fast_settings.json"
FAST_OPTIONS_ENV = "DLCV_FAST_OPTIONS"  # JSON options forced for one process (the benchmark)
# What --mode fast does where benchmarks/throughput.py --fast-settings has measured nothing.
FAST_DEFAULTS = {"torch": {"channels_last": True}, "keras": {"jit_compile": "auto"}}


def fast_options(framework: str, device: str) -> dict:
    """The --mode fast options of `framework` ('keras' or 'torch': the trainer's side) on this
    machine: the fastest measured for its CPU kind (or 'cuda') by `benchmarks/throughput.py
    --fast-settings`, recorded in common/fast_settings.json; FAST_DEFAULTS where none was
    measured; DLCV_FAST_OPTIONS (JSON) overrides both, for the benchmark's own candidates."""
    if os.environ.get(FAST_OPTIONS_ENV):
        return json.loads(os.environ[FAST_OPTIONS_ENV])
    kind = "cuda" if device == "cuda" else cpu_kind()
    try:
        settings = json.loads(FAST_SETTINGS.read_text())
    except (OSError, ValueError):
        settings = {}
    measured = settings.get(kind, {}).get(framework, {}).get("options")
    return dict(measured if measured is not None else FAST_DEFAULTS[framework])


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process (all its threads) and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _reading() -> tuple[tuple[float, float] | None, float]:
    """A point to measure from: (/proc/stat's busy and total jiffies, this process's CPU s)."""
    return _cpu_times(), _own_cpu_seconds()


def _others_since(start: tuple[tuple[float, float] | None, float]) -> float | None:
    """The share of all cores (0..1) that processes other than this one used since `start`
    (a _reading): the machine's busy time minus this process's, over the elapsed CPU time;
    None off Linux or when no time passed."""
    (cpu0, own0), (cpu1, own1) = start, _reading()
    if cpu0 is None or cpu1 is None or cpu1[1] <= cpu0[1]:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (cpu1[0] - cpu0[0]) / ticks - (own1 - own0)
    return max(0.0, min(1.0, busy / ((cpu1[1] - cpu0[1]) / ticks)))


# A point to measure the machine's load from: (time.perf_counter(), _reading()).
Mark = tuple[float, tuple[tuple[float, float] | None, float]]


def mark() -> Mark:
    """Now, as a point that LoadMonitor(since=...) measures other processes' share from."""
    return time.perf_counter(), _reading()


def others_share(seconds: float = SAMPLE_SECONDS) -> float | None:
    """The share of all cores (0..1) that processes other than this one used over the next
    `seconds`; None off Linux."""
    start = _reading()
    time.sleep(seconds)
    return _others_since(start)


def free_cores() -> tuple[int, float | None]:
    """(cores not used by other processes, rounded down, at least 1; the others' share) now."""
    cores = os.cpu_count() or 1
    share = others_share()
    if share is None:
        return cores, None
    return max(1, int(cores * (1.0 - share) + 0.25)), share


@dataclass(frozen=True)
class Contention:
    """The CPU a run trained on (a record's `contention`): shares of all cores, 0..1.

    `others_before`: other processes' share before training (over the setup since the
    monitor's `since` mark, else over SAMPLE_SECONDS sampled at its start);
    `others_during` / `others_max`: their mean and largest sampled share while it trained;
    `own_cpu_per_thread`: this process's CPU seconds / (wall seconds x threads), about 1 for a
    compute-bound run on free cores (less when its threads waited for a core, or for data);
    `busy`: others_during or others_before above BUSY_SHARE;
    `other_jobs`: the most framework processes of this suite other than this one (any run, any
    executor, e.g. Ray jobs placed on the same machine) seen at a sample while it trained;
    None off Linux and in records made before it existed."""

    cores: int
    threads: int
    others_before: float | None
    others_during: float | None
    others_max: float | None
    own_cpu_per_thread: float
    busy: bool
    other_jobs: int | None = None

    def to_dict(self) -> dict:
        """The record's `contention` field."""
        return asdict(self)


class LoadMonitor:
    """`with LoadMonitor(threads, since=mark()) as monitor:` around training; `monitor.result`
    is then the run's Contention, its load before training measured since `since`. A daemon
    thread samples every SAMPLE_SECONDS /proc/stat and each process's /proc/PID/cmdline
    (other_framework_processes): 0.9 ms of CPU per sample with 68 processes running (AMD EPYC,
    2026-11-30), under 0.2% of one core."""

    def __init__(self, threads: int, since: Mark | None = None):
        self.threads = threads
        self.result: Contention | None = None
        self._since = since
        self._samples: list[float] = []
        self._jobs: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> "LoadMonitor":
        # others_before: over the setup since `since` (imports, data, model: this process's own
        # CPU is subtracted), or, when that was shorter than SAMPLE_SECONDS, a sample now
        if self._since is not None and time.perf_counter() - self._since[0] >= SAMPLE_SECONDS:
            self._before = _others_since(self._since[1])
        else:
            self._before = others_share()
        self._start, self._t0 = _reading(), time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            jobs = other_framework_processes()
            if jobs is not None:
                self._jobs.append(jobs)
            start = _reading()
            if self._stop.wait(SAMPLE_SECONDS):
                return
            share = _others_since(start)
            if share is not None:
                self._samples.append(share)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        wall = max(time.perf_counter() - self._t0, 1e-9)
        own = _own_cpu_seconds() - self._start[1]
        during = _others_since(self._start)
        shares = [s for s in (self._before, during) if s is not None]
        self.result = Contention(
            cores=os.cpu_count() or 1, threads=self.threads,
            others_before=_round(self._before), others_during=_round(during),
            others_max=_round(max(self._samples)) if self._samples else _round(during),
            own_cpu_per_thread=round(own / (wall * self.threads), 3),
            busy=any(s > BUSY_SHARE for s in shares),
            other_jobs=max(self._jobs) if self._jobs else None)


# How a framework process of this suite shows in /proc/PID/cmdline (common.launch starts each
# as `python -m common.worker FRAMEWORK JOB`).
WORKER_MARK = b"\0-m\0common.worker\0"


def other_framework_processes() -> int | None:
    """How many framework processes of this suite other than this one run on this machine now
    (/proc/PID/cmdline); None off Linux."""
    pids = framework_process_ids()
    return None if pids is None else len(pids - {os.getpid()})


def framework_process_ids() -> set[int] | None:
    """The process ids whose command line reads `... -m common.worker ...` (WORKER_MARK);
    None off Linux."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return None
    pids = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if WORKER_MARK in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def busy_text(contention: dict | None) -> str:
    """'busy: 45% of the CPU used by other processes' for a busy record's contention, else ''."""
    if not contention or not contention.get("busy"):
        return ""
    # the share while it trained; the one before training when only that one was high
    during, before = contention.get("others_during"), contention.get("others_before")
    share = during if during is not None and during > BUSY_SHARE else max(during or 0.0,
                                                                            before or 0.0)
    return f"busy: {share:.0%} of the CPU used by other processes"
