"""Optimizer and learning-rate schedules: cosine reaches its floor on the last step, state
round-trips."""

from __future__ import annotations

import math

import pytest
import torch

from chemprune.pipeline.optim import LRSchedule, cosine_factor, warmup_cosine_factor


def _opt(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def test_cosine_factor_endpoints_and_midpoint():
    assert cosine_factor(0, 100, 0.01) == 1.0
    assert math.isclose(cosine_factor(50, 100, 0.0), 0.5)
    assert math.isclose(cosine_factor(100, 100, 0.01), 0.01)
    assert math.isclose(cosine_factor(150, 100, 0.01), 0.01)  # past the end it stays at the floor


def test_warmup_rises_linearly_then_follows_the_cosine_of_the_rest():
    assert [warmup_cosine_factor(s, 14, 0.0, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine_factor(4, 14, 0.0, 4) == 1.0
    assert math.isclose(warmup_cosine_factor(9, 14, 0.0, 4), 0.5)
    assert math.isclose(warmup_cosine_factor(14, 14, 0.1, 4), 0.1)
    opt = _opt(0.1)
    sched = LRSchedule(opt, kind="cosine", lr=0.1, min_lr=0.0, total_steps=14, warmup_steps=4)
    assert sched.lr == pytest.approx(0.025)  # the first step already runs at lr / warmup
    with pytest.raises(ValueError, match="warm-up needs the cosine"):
        LRSchedule(_opt(), kind="plateau", lr=0.1, min_lr=0.0, warmup_steps=4)
    with pytest.raises(ValueError, match="leaves nothing"):
        LRSchedule(_opt(), kind="cosine", lr=0.1, min_lr=0.0, total_steps=4, warmup_steps=4)


def test_cosine_anneals_every_step_to_min_lr():
    opt = _opt(0.1)
    sched = LRSchedule(opt, kind="cosine", lr=0.1, min_lr=1e-4, total_steps=40)
    lrs = [sched.lr]
    for _ in range(40):
        opt.step()
        sched.after_step()
        sched.after_epoch(1.0)  # ignored by cosine
        lrs.append(sched.lr)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(1e-4)
    assert all(b < a for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert not sched.exhausted()  # only plateau stops training


def test_cosine_state_round_trips_mid_run():
    opt = _opt()
    a = LRSchedule(opt, kind="cosine", lr=0.1, min_lr=0.0, total_steps=10)
    for _ in range(4):
        opt.step()
        a.after_step()
    state = a.state_dict()
    opt2 = _opt()
    opt2.load_state_dict(opt.state_dict())
    b = LRSchedule(opt2, kind="cosine", lr=0.1, min_lr=0.0, total_steps=10)
    b.load_state_dict(state)
    for _ in range(3):
        for o, s in ((opt, a), (opt2, b)):
            o.step()
            s.after_step()
        assert b.lr == a.lr
    plateau = LRSchedule(_opt(), kind="plateau", lr=0.1, min_lr=1e-6)
    with pytest.raises(ValueError, match="saved learning-rate schedule is 'cosine'"):
        plateau.load_state_dict(state)


def test_plateau_reduces_and_reports_exhaustion():
    opt = _opt(0.1)
    sched = LRSchedule(opt, kind="plateau", lr=0.1, min_lr=0.025, lr_factor=0.5, lr_patience=0)
    sched.after_epoch(1.0)
    sched.after_step()  # ignored by plateau
    assert sched.lr == pytest.approx(0.1)
    sched.after_epoch(1.0)
    assert sched.lr == pytest.approx(0.05) and not sched.exhausted()
    sched.after_epoch(1.0)
    assert sched.lr == pytest.approx(0.025) and sched.exhausted()


def test_bad_schedules_are_named():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'.*plateau, cosine"):
        LRSchedule(_opt(), kind="step", lr=0.1, min_lr=0.0)
    with pytest.raises(ValueError, match="total_steps >= 1"):
        LRSchedule(_opt(), kind="cosine", lr=0.1, min_lr=0.0, total_steps=0)
