"""--lr-schedule: one semantics in both frameworks, PyTorch's per-epoch schedulers' closed forms
(checked against torch.optim.lr_scheduler in a PyTorch process), applied by the one epoch driver
so every framework trains each epoch at the same learning rate."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest
from conftest import ROOT, records_of, run_compare, run_dirs

from common.config import parse_lr_schedule, scheduled_lr
from common.errors import UserError

EPOCHS = 7
SCHEDULES = ("step:3:0.5", "exp:0.8", "cosine")


@functools.cache
def torch_lrs() -> dict[str, list[float]]:
    """Per schedule of SCHEDULES, the lr of each epoch from PyTorch's own scheduler, stepped once
    per epoch (one PyTorch process for all of them)."""
    code = f"""
import json, torch
out = {{}}
for text in {SCHEDULES!r}:
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(p, lr=0.1)
    kind = text.split(":")
    s = {{"step": lambda: torch.optim.lr_scheduler.StepLR(opt, int(kind[1]), float(kind[2])),
         "exp": lambda: torch.optim.lr_scheduler.ExponentialLR(opt, float(kind[-1])),
         "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, {EPOCHS})}}[kind[0]]()
    lrs = []
    for _ in range({EPOCHS}):
        lrs.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    out[text] = lrs
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("text", SCHEDULES)
def test_schedules_are_pytorchs(text):
    ours = [scheduled_lr(parse_lr_schedule(text), 0.1, e, EPOCHS) for e in range(1, EPOCHS + 1)]
    assert ours == pytest.approx(torch_lrs()[text], rel=1e-12)


@pytest.mark.parametrize("text", ["step:0:0.5", "step:3", "exp", "exp:-1", "cosine:2", "linear"])
def test_bad_schedules_are_one_line(text):
    with pytest.raises(UserError, match="--lr-schedule"):
        parse_lr_schedule(text)


def test_every_framework_trains_each_epoch_at_the_scheduled_lr(tmp_path):
    proc = run_compare("--task", "digits", "--framework", "both", "--epochs", "3",
                       "--train-size", "200", "--lr-schedule", "step:1:0.5", "--no-plots",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = records_of(run_dirs(tmp_path)[0])
    assert len(records) == 2
    for record in records:
        assert [h["lr"] for h in record.history] == pytest.approx([0.01, 0.005, 0.0025])
        assert record.callbacks.lr_schedule == ("step", 1, 0.5)
    assert records[0].test_loss == pytest.approx(records[1].test_loss, abs=1e-3)
