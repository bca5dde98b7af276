"""SmoothOut without DDP: noise bounds, exact restore, gradients at the perturbed point, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.distributed.smoothout import SmoothOut, amplitude_factor
from chemprune.molecules.checkpoint import load_checkpoint
from chemprune.molecules.data.splits import make_split, subset_sizes
from chemprune.pipeline.train import TrainSettings, train

TINY = dict(
    hidden_channels=16, filter_channels=16, num_interactions=2, num_gaussians=16, batch_size=16
)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 1))


def test_noise_is_uniform_within_the_amplitude_and_seeded():
    model = net()
    so = SmoothOut(amplitude=0.1, seed=1)
    noise = so.noise(model, step=4)
    flat = torch.cat([n.reshape(-1) for n in noise])
    assert flat.abs().max() <= 0.1 and flat.abs().max() > 0.05
    assert all(torch.equal(a, b) for a, b in zip(noise, so.noise(model, step=4), strict=True))
    assert not torch.equal(flat, torch.cat([n.reshape(-1) for n in so.noise(model, step=5)]))
    other_rank = SmoothOut(amplitude=0.1, seed=1, rank=1).noise(model, step=4)
    assert not torch.equal(noise[0], other_rank[0])


def test_adaptive_amplitude_follows_each_filter_norm():
    model = net()
    with torch.no_grad():
        model[0].weight[0] *= 100.0
    noise = SmoothOut(amplitude=0.01, adaptive=True).noise(model, step=0)
    w = model[0].weight
    bound = 0.01 * w.norm(dim=1, keepdim=True)
    assert (noise[0].abs() <= bound).all()
    assert noise[0][0].abs().max() > 10 * noise[0][1:].abs().max()
    assert (noise[1].abs() <= 0.01 * model[0].bias.pow(2).mean().sqrt()).all()


def test_gradient_at_perturbed_weights_and_exact_restore():
    model, x = net(), torch.randn(8, 5, generator=torch.Generator().manual_seed(2))
    before = [p.detach().clone() for p in model.parameters()]
    so = SmoothOut(amplitude=0.2, seed=3)
    with so.perturbed(model, step=7):
        model(x).pow(2).sum().backward()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    shifted = net()
    with torch.no_grad():
        for p, n in zip(shifted.parameters(), so.noise(shifted, step=7), strict=True):
            p.add_(n)
    shifted(x).pow(2).sum().backward()
    for a, b in zip(model.parameters(), shifted.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad)
    plain = net()
    plain(x).pow(2).sum().backward()
    assert not torch.allclose(plain[0].weight.grad, model[0].weight.grad)


def test_pieces_get_their_own_draws():
    model, so = net(), SmoothOut(amplitude=0.1, seed=1, chunk=4)
    sizes = [p.numel() for p in so.pieces(torch.arange(10))]
    assert sizes == [4, 4, 2]
    assert [p.numel() for p in SmoothOut(amplitude=0.1).pieces(torch.arange(10))] == [10]
    assert len(SmoothOut(amplitude=0.0, chunk=4).pieces(torch.arange(10))) == 1  # off: no split
    first, second = so.noise(model, step=4, piece=0), so.noise(model, step=4, piece=1)
    assert all(torch.equal(a, b) for a, b in zip(first, so.noise(model, step=4), strict=True))
    assert not torch.equal(first[0], second[0])
    with pytest.raises(ValueError, match="chunk must be >= 0"):
        SmoothOut(amplitude=0.1, chunk=-1)


def test_schedules_follow_the_authors_formulas():
    assert amplitude_factor("constant", 500, 1000) == 1.0
    assert amplitude_factor("anneal", 0) == 1.0
    assert amplitude_factor("anneal", 99) == pytest.approx(100**-0.275)
    ramp = [amplitude_factor("tanh", t, 1000) for t in (0, 250, 500, 750, 999)]
    assert ramp[0] < 0.01 and ramp[2] == pytest.approx(0.5) and ramp[-1] > 0.99
    assert ramp == sorted(ramp) and ramp[1] + ramp[3] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs the run's total_steps"):
        SmoothOut(amplitude=0.1, schedule="tanh")
    with pytest.raises(ValueError, match="unknown SmoothOut schedule 'cosine'"):
        SmoothOut(amplitude=0.1, schedule="cosine")


def test_scheduled_noise_is_the_constant_draw_scaled():
    """The schedule scales the step's draw (same random numbers), also for adaptive bounds."""
    model = net()
    for adaptive in (False, True):
        const = SmoothOut(amplitude=0.1, adaptive=adaptive, seed=2)
        annealed = SmoothOut(amplitude=0.1, adaptive=adaptive, seed=2, schedule="anneal")
        f = amplitude_factor("anneal", 40)
        for a, b in zip(const.noise(model, step=40), annealed.noise(model, step=40), strict=True):
            torch.testing.assert_close(b, a * f)
        assert annealed.amplitude_at(40) == pytest.approx(0.1 * f)


def test_zero_amplitude_changes_nothing_and_negative_is_refused():
    model = net()
    with SmoothOut(amplitude=0.0).perturbed(model, step=0):
        assert torch.equal(model[0].weight, net()[0].weight)
    with pytest.raises(ValueError, match="amplitude must be >= 0"):
        SmoothOut(amplitude=-1.0)


def test_training_with_smoothout_learns_and_is_saved_in_settings(qm9_small, tmp_path):
    split = make_split(len(qm9_small), subset_sizes(240, len(qm9_small)), 0)
    s = TrainSettings(epochs=4, lr=3e-3, smoothout=0.01, smoothout_adaptive=True, **TINY)
    r = train(qm9_small, split, tmp_path, settings=s, progress=False, log=lambda m: None)
    hist = load_checkpoint(tmp_path / "last.pt")["training"]
    assert hist["settings"]["smoothout"] == 0.01 and hist["settings"]["smoothout_adaptive"]
    assert hist["history"][-1]["train_mae"] < hist["history"][0]["train_mae"]
    assert r["epochs_done"] == 4


def test_one_draw_per_part_in_training(qm9_small, tmp_path):
    """A chunk as large as the batch is one draw per step (the same run); smaller chunks give
    several draws per step (another run), which still learns."""
    split = make_split(len(qm9_small), subset_sizes(240, len(qm9_small)), 0)
    quiet = dict(progress=False, log=lambda m: None)
    base = dict(epochs=3, lr=3e-3, smoothout=0.02, **TINY)
    runs = {}
    for chunk in (0, 16, 4):
        out = tmp_path / f"c{chunk}"
        train(qm9_small, split, out, settings=TrainSettings(**base, smoothout_chunk=chunk), **quiet)
        runs[chunk] = load_checkpoint(out / "last.pt")
    for k, v in runs[0]["state_dict"].items():
        assert torch.equal(runs[16]["state_dict"][k], v)
    hist = runs[4]["training"]["history"]
    assert runs[4]["training"]["settings"]["smoothout_chunk"] == 4
    assert hist[-1]["train_mae"] < hist[0]["train_mae"]
    assert any(
        not torch.equal(runs[4]["state_dict"][k], v) for k, v in runs[0]["state_dict"].items()
    )


def test_tanh_schedule_in_training_ramps_up_and_resumes_exactly(qm9_small, tmp_path):
    """history.jsonl records the rising amplitude; a run stopped after its first step and resumed
    ends with the same weights as one run straight through (the schedule depends on the step)."""
    split = make_split(len(qm9_small), subset_sizes(240, len(qm9_small)), 0)
    quiet = dict(progress=False, log=lambda m: None)
    base = dict(lr=3e-3, smoothout=0.02, smoothout_schedule="tanh", **TINY)
    s = TrainSettings(epochs=4, **base)
    train(qm9_small, split, tmp_path / "a", settings=s, **quiet)
    straight = load_checkpoint(tmp_path / "a" / "last.pt")
    amps = [row["smoothout_amplitude"] for row in straight["training"]["history"]]
    assert amps == sorted(amps) and amps[0] < 0.01 < amps[-1] <= 0.02
    assert straight["training"]["settings"]["smoothout_schedule"] == "tanh"
    out = tmp_path / "b"
    train(qm9_small, split, out, settings=s, max_minutes=1e-9, **quiet)
    assert 0 < load_checkpoint(out / "last.pt")["training"]["global_step"] < 48
    train(qm9_small, split, out, settings=s, resume=True, **quiet)
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["training"]["global_step"] == straight["training"]["global_step"]
    for k, v in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-5, atol=1e-6)
