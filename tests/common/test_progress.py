"""Progress bars: on a terminal only, and the fine-tuning bar advances with its budget."""

from __future__ import annotations

import numpy as np
import torch

import chemprune.pipeline.finetune as ft
from chemprune.common.progress import on_terminal, progress_bar
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from tests.cli.conftest import TINY
from tests.conftest import run_cli


class Recorder:
    def __init__(self, total, **kwargs):
        self.total, self.n, self.seen, self.closed = total, 0, [], False

    def update(self, k):
        self.n += k
        self.seen.append(self.n)

    def set_postfix(self, **kw):
        pass

    def close(self):
        self.closed = True


def test_finetune_bar_advances_with_the_step_budget(qm9_small, monkeypatch):
    bars = []
    monkeypatch.setattr(ft, "progress_bar", lambda **kw: bars.append(Recorder(**kw)) or bars[-1])
    torch.manual_seed(0)
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    model = SchNet(hidden_channels=8, filter_channels=8, num_interactions=1, num_gaussians=8)
    idx = np.arange(len(ms))
    ft.finetune(model, ms, idx[:160], idx[160:200], minutes=30, max_steps=10, batch_size=16,
                log=lambda m: None)  # fmt: skip
    (bar,) = bars
    assert bar.closed and bar.seen == sorted(bar.seen)
    assert bar.seen[0] >= 100 and bar.n == 1000  # 10 steps of 10: 10% each, whole at the end


def test_no_bars_off_a_terminal(qm9_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CHEMPRUNE_PROGRESS", raising=False)
    assert not on_terminal() and progress_bar(total=3) is None  # pytest captures stderr
    tiny = [a for a in TINY if a != "--no-progress"]
    r = run_cli("train", "--data-dir", str(qm9_dir), "--epochs", "2", "--out", str(tmp_path / "r"),
                *tiny)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout
    assert "epoch    1" in r.stdout and "epoch    2" in r.stdout
