"""A busy machine is seen and said: the load monitor measures other processes' CPU share, a busy
row is flagged, and no framework is called faster on a busy run. Time to accuracy from the
history. The thread policy is set before a framework is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import math
import time
from dataclasses import replace

import pytest
from tests_support import make_record

from common.machine import (BUSY_SHARE, SAMPLE_SECONDS, LoadMonitor, apply_thread_policy,
                            busy_text, free_cores, mark, others_share)
from common.loop import Callbacks
from common.report.run import comparison_table, difference_lines, seconds_to_accuracy
from common.report.values import METRICS

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")

BUSY = {"cores": 2, "threads": 2, "others_before": 0.5, "others_during": 0.45,
        "others_max": 0.5, "own_cpu_per_thread": 0.6, "busy": True}
IDLE = {**BUSY, "others_before": 0.0, "others_during": 0.01, "others_max": 0.02, "busy": False}


@pytest.fixture
def burner():
    """One process spinning on one core for the test's duration."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    yield
    proc.kill()
    proc.wait()


def test_a_burning_process_is_measured_and_flags_the_run(burner):
    # at least the burner's core; more when a parallel test worker runs beside it
    share = others_share(1.0)
    cores = os.cpu_count() or 1
    assert share >= 1 / cores - 0.15
    with LoadMonitor(threads=1) as monitor:
        deadline = time.perf_counter() + 1.2
        while time.perf_counter() < deadline:  # this process computes on the other core
            pass
    result = monitor.result
    assert result.busy and result.others_during >= 1 / cores - 0.15
    assert 0 < result.own_cpu_per_thread <= 1.05  # less than 1 when its core was shared too
    free, measured = free_cores()
    assert free <= max(1, cores - 1) and measured > BUSY_SHARE
    # measured over a setup since a mark (this process's own work there left out): no sample
    # taken at the start of training, and the burner is seen before it
    start = mark()
    deadline = time.perf_counter() + SAMPLE_SECONDS + 0.1
    while time.perf_counter() < deadline:  # the "setup": this process computes
        pass
    t0 = time.perf_counter()
    with LoadMonitor(threads=1, since=start) as monitor:
        entered = time.perf_counter() - t0
    assert entered < SAMPLE_SECONDS / 2, entered
    assert monitor.result.others_before >= 1 / cores - 0.15, monitor.result


def test_an_idle_machine_is_not_busy():
    with LoadMonitor(threads=1) as monitor:
        time.sleep(0.6)
    assert monitor.result.own_cpu_per_thread < 0.2  # it slept
    # other processes of this machine (a parallel test worker) may run: only the type is sure
    assert isinstance(monitor.result.busy, bool)


def test_a_busy_row_is_flagged_and_no_faster_verdict_is_given():
    records = [make_record("keras", contention=BUSY, train_seconds=2.0),
               make_record("torch", contention=IDLE, train_seconds=9.0)]
    table = comparison_table(records).set_index("framework")
    assert table.loc["keras", "training s"] == "2.0 (busy)"
    assert table.loc["torch", "training s"] == "9.0"
    lines = difference_lines(records)
    assert not any(line.startswith("training seconds, ") for line in lines)
    assert any(line.startswith("training seconds: not compared, because keras ran on a busy "
                               "machine (busy: 45% of the CPU used by other processes)")
               for line in lines)
    idle = [make_record("keras", contention=IDLE), make_record("torch", contention=IDLE)]
    assert any(line.startswith("training seconds, keras - torch") for line in
               difference_lines(idle))
    assert busy_text(None) == "" and busy_text(IDLE) == ""


def test_seconds_to_accuracy_sums_the_epochs_until_the_target():
    history = [{"epoch": e, "val_accuracy": a, "seconds": s, "val_loss": 1.0}
               for e, a, s in ((1, 0.5, 2.0), (2, 0.91, 3.0), (3, 0.95, 4.0))]
    record = make_record("torch", history=history)
    assert seconds_to_accuracy(record, 0.9) == 5.0
    assert seconds_to_accuracy(record, 0.5) == 2.0
    assert seconds_to_accuracy(record, 0.99) is None
    target = Callbacks(target_accuracy=0.9)
    table = comparison_table([replace(record, callbacks=target),
                              make_record("keras", history=history[:1], callbacks=target)])
    assert table.set_index("framework")["s to 0.9 val. accuracy"].to_dict() == {
        "torch": "5.0", "keras": "not reached"}
    assert METRICS["seconds_to_target"].read(replace(record, callbacks=target)) == 5.0
    assert math.isnan(METRICS["seconds_to_target"].read(record))  # no target given


def test_the_thread_policy_is_set_unless_turned_off(monkeypatch):
    for key in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DLCV_THREAD_POLICY", "off")
    assert apply_thread_policy() == {} and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delenv("DLCV_THREAD_POLICY")
    monkeypatch.setenv("KMP_BLOCKTIME", "5")  # the user's own value wins
    assert apply_thread_policy() == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "5"}


def test_fast_options_are_the_measured_ones_for_this_cpu_kind(tmp_path, monkeypatch):
    import json

    import common.machine as machine

    settings = tmp_path / "fast_settings.json"
    monkeypatch.setattr(machine, "FAST_SETTINGS", settings)
    monkeypatch.delenv(machine.FAST_OPTIONS_ENV, raising=False)
    assert machine.fast_options("torch", "cpu") == machine.FAST_DEFAULTS["torch"]  # unmeasured
    kind = machine.cpu_kind()
    assert kind in ("intel-amx", "intel-avx512", "amd-avx512", "amd-avx2", "intel-avx2", "other")
    settings.write_text(json.dumps({kind: {"torch": {"options": {"channels_last": False}}},
                                    "cuda": {"keras": {"options": {"jit_compile": True}}}}))
    assert machine.fast_options("torch", "cpu") == {"channels_last": False}
    assert machine.fast_options("keras", "cpu") == machine.FAST_DEFAULTS["keras"]
    assert machine.fast_options("keras", "cuda") == {"jit_compile": True}
    monkeypatch.setenv(machine.FAST_OPTIONS_ENV, '{"channels_last": true}')
    assert machine.fast_options("torch", "cpu") == {"channels_last": True}


def test_framework_processes_are_found_by_their_command_line():
    """A process whose command line reads `... -m common.worker ...` is found while it runs
    (other_framework_processes counts them, this one excluded); this test process is not."""
    from common.machine import framework_process_ids, other_framework_processes

    # argv as a framework process's: python -c ... -m common.worker torch (sleeps instead)
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m",
                             "common.worker", "torch"])
    try:
        time.sleep(0.2)
        found = framework_process_ids()
        assert fake.pid in found and os.getpid() not in found
        assert other_framework_processes() >= 1
    finally:
        fake.kill()
        fake.wait()
    assert fake.pid not in framework_process_ids()
