"""TernGrad's ternarisation on its own: clipping as in the paper, unbiased, per-layer scalers."""

from __future__ import annotations

import pytest
import torch

from chemprune.engines.distributed.terngrad import clip_segments, ternarize


def test_clipping_bounds_each_segment_by_its_own_std():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g), 100 * torch.randn(50, generator=g)
    a[0], b[0] = 50.0, 5000.0
    out = clip_segments(torch.cat([a, b]), [1000, 50], clip=2.5)
    ca, cb = out[:1000], out[1000:]
    assert abs(float(ca[0]) - 2.5 * float(a.double().std(unbiased=False))) < 1e-5
    assert abs(float(cb[0]) - 2.5 * float(b.double().std(unbiased=False))) < 1e-2
    inside = a.abs() < 2.5 * a.std(unbiased=False)
    assert torch.equal(ca[inside], a[inside])


def test_constant_or_single_value_segments_are_not_zeroed():
    out = clip_segments(torch.tensor([0.3, 2.0, 2.0]), [1, 2], clip=2.5)
    assert torch.equal(out, torch.tensor([0.3, 2.0, 2.0]))
    tern, scale = ternarize(torch.tensor([-0.3, 2.0, 2.0]), [1, 2])
    assert tern.tolist() == [-1, 1, 1] and torch.allclose(scale, torch.tensor([0.3, 2.0]))


def test_values_are_ternary_and_scaler_is_the_max():
    grad = torch.randn(300, generator=torch.Generator().manual_seed(1))
    tern, scale = ternarize(grad, [100, 200], generator=torch.Generator().manual_seed(2))
    assert tern.dtype == torch.int8 and set(tern.unique().tolist()) <= {-1, 0, 1}
    clipped = clip_segments(grad, [100, 200], clip=2.5)
    assert torch.equal(scale, torch.stack([clipped[:100].abs().max(), clipped[100:].abs().max()]))
    # signs never flip
    assert ((tern.float() * grad) >= 0).all()


def test_unbiased_mean_over_draws():
    """20,000 independent draws of each element: the mean is within 5 standard errors of the
    clipped gradient for every element, and a 2% bias would be caught."""
    n, draws = 40, 20_000
    grad = torch.randn(n, generator=torch.Generator().manual_seed(3))
    grad[0] = 9.0  # clipped
    tern, scale = ternarize(
        grad.repeat(draws), [n] * draws, generator=torch.Generator().manual_seed(4)
    )
    est = (tern.view(draws, n).double() * scale.double().view(draws, 1)).mean(0)
    target = clip_segments(grad, [n], clip=2.5).double()
    s = float(scale[0])
    sem = torch.sqrt((s * target.abs() - target**2).clamp_min(0) / draws) + 1e-12
    assert ((est - target).abs() <= 5 * sem + 1e-9).all()
    big = target.abs() > 0.5 * s
    assert ((1.02 * target - est).abs()[big] > 5 * sem[big]).all()


def test_full_precision_patterns_must_match_a_parameter():
    from torch import nn

    from chemprune.engines.distributed.hooks import full_precision_ids

    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    assert full_precision_ids(model, ["1.*"]) == {id(model[1].weight), id(model[1].bias)}
    with pytest.raises(ValueError, match="matches no parameter"):
        full_precision_ids(model, ["lin2.*"])
