"""One step's gradient: SmoothOut parts add up to the whole batch's gradient; clipping."""

from __future__ import annotations

import json

import pytest
import torch

from chemprune.engines.distributed import DistContext, SmoothOut
from chemprune.molecules.data.splits import make_split, subset_sizes
from chemprune.pipeline.train import TrainSettings, train
from chemprune.pipeline.train_step import accumulate_gradients, clip_gradients
from tests.engines.distributed._grad_worker import grads_of, molecules, tiny_model


def test_parts_without_noise_give_the_whole_batch_gradient():
    data, chunk = molecules(), torch.arange(10)
    whole, parts = tiny_model(), tiny_model()
    ctx = DistContext.single()
    err_w, loss_w = accumulate_gradients(
        whole, whole, data, chunk, ctx=ctx, smooth=SmoothOut(amplitude=0.0), step=0
    )
    # a tiny amplitude splits the batch into parts of 3 while barely moving the weights
    so = SmoothOut(amplitude=1e-12, chunk=3)
    err_p, loss_p = accumulate_gradients(parts, parts, data, chunk, ctx=ctx, smooth=so, step=0)
    assert err_p.shape == err_w.shape == (10,)
    torch.testing.assert_close(loss_p, loss_w)
    for a, b in zip(grads_of(parts), grads_of(whole), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_clip_gradients_scales_to_the_bound_and_reports_the_norm_before():
    model = torch.nn.Linear(3, 2)
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    before = clip_gradients(model, 0.0)
    assert before == pytest.approx(2.0 * 8**0.5)  # 8 values of 2: unchanged without a bound
    assert clip_gradients(model, 1.0) == pytest.approx(before)
    total = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()
    assert float(total) == pytest.approx(1.0, rel=1e-5)
    assert clip_gradients(torch.nn.Linear(3, 2), 1.0) == 0.0  # no gradients yet


def test_training_records_gradient_norms_and_clips(qm9_small, tmp_path):
    split = make_split(len(qm9_small), subset_sizes(240, len(qm9_small)), 0)
    tiny = dict(hidden_channels=16, filter_channels=16, num_interactions=2, num_gaussians=16)
    quiet = dict(progress=False, log=lambda m: None)
    rows = {}
    for clip in (0.0, 1e-4):
        s = TrainSettings(
            epochs=3, batch_size=16, lr=0.01, optimizer="sgd", max_grad_norm=clip, **tiny
        )
        train(qm9_small, split, tmp_path / str(clip), settings=s, **quiet)
        text = (tmp_path / str(clip) / "history.jsonl").read_text().splitlines()
        rows[clip] = [json.loads(line) for line in text]
    for hist in rows.values():
        assert all(r["grad_norm_max"] >= r["grad_norm"] > 1e-3 for r in hist)
    # every epoch sees the same molecules: the train MAE moves only as far as the weights do
    moved = {c: abs(h[-1]["train_mae"] - h[0]["train_mae"]) for c, h in rows.items()}
    assert moved[1e-4] < 0.05 * moved[0.0]
