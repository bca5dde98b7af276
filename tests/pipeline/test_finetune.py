"""finetune: the weight average (``ema``) is what gets validated and returned, and averaging
never changes the training trajectory itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.pipeline.finetune import finetune


class Recorder:
    """Duck-typed pruner hooks that only record the weights after every optimizer step."""

    def __init__(self) -> None:
        self.iterates: list[list[torch.Tensor]] = []

    def auxiliary_parameters(self) -> list:
        return []

    def regularize(self, model) -> None:
        pass

    def step(self, model, step: int) -> None:
        self.iterates.append([p.detach().clone() for p in model.parameters()])


def run(qm9_small, ema: float):
    torch.manual_seed(0)
    mset = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    model = SchNet(hidden_channels=8, filter_channels=8, num_interactions=1, num_gaussians=8,
                   mean=6.8, std=1.3)  # fmt: skip
    rec = Recorder()
    out = finetune(
        model, mset, np.arange(48), np.arange(48, 64), minutes=5, max_steps=7, lr=1e-2,
        batch_size=16, pruner=rec, select_best=False, progress=False, log=lambda m: None, ema=ema,
    )  # fmt: skip
    return model, rec.iterates, out


def test_the_average_is_returned_and_the_trajectory_is_unchanged(qm9_small):
    _, plain, out0 = run(qm9_small, 0.0)
    model, iterates, out = run(qm9_small, 0.9)
    assert len(iterates) == len(plain) == 7 and out["ema"] == 0.9 and "ema" not in out0
    for a, b in zip(plain, iterates, strict=True):  # swapping the average in and out is exact
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    torch.manual_seed(0)
    start = [p.detach().clone() for p in SchNet(hidden_channels=8, filter_channels=8,
             num_interactions=1, num_gaussians=8, mean=6.8, std=1.3).parameters()]  # fmt: skip
    avg = start
    for t, weights in enumerate(iterates):
        d = min(0.9, (1 + t) / (10 + t))
        avg = [d * s + (1 - d) * w for s, w in zip(avg, weights, strict=True)]
    for want, got in zip(avg, model.parameters(), strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
    assert any((w != g).any() for w, g in zip(iterates[-1], model.parameters(), strict=True))


def test_a_decay_outside_zero_one_is_refused(qm9_small):
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 1.0"):
        run(qm9_small, 1.0)
