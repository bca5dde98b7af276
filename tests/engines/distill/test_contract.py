"""One contract, run over every registered distillation loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.distill import DISTILL_LOSSES, DistillLoss
from chemprune.engines.registry import Registry

NAMES = DISTILL_LOSSES.names()


def make(name: str, s: int = 6, t: int = 6, **kw) -> DistillLoss:
    return DISTILL_LOSSES.get(name)(student_dim=s, teacher_dim=t, **kw)


def test_registry_holds_the_four_terms():
    assert NAMES == ["cosine", "discriminant", "mse", "soft_target"]


@pytest.mark.parametrize("name", NAMES)
def test_scalar_nonnegative_and_gradient_reaches_the_student_only(name):
    torch.manual_seed(0)
    s = torch.randn(4, 5, 6, requires_grad=True)
    t = torch.randn(4, 5, 6, requires_grad=True)
    loss = make(name)(s, t)
    assert loss.dim() == 0 and torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert t.grad is None


@pytest.mark.parametrize("name", NAMES)
def test_zero_when_the_student_equals_the_teacher(name):
    torch.manual_seed(1)
    x = torch.randn(7, 6)
    assert float(make(name)(x.clone(), x)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_masked_rows_do_not_count_and_mean_is_per_counted_row(name):
    torch.manual_seed(2)
    s, t = torch.randn(8, 6), torch.randn(8, 6)
    mask = torch.tensor([1, 1, 0, 1, 0, 0, 1, 1], dtype=torch.bool)
    loss = make(name)
    a = loss(s, t, mask=mask)
    s2 = s.clone()
    s2[~mask] = 100.0
    torch.testing.assert_close(loss(s2, t, mask=mask), a)
    torch.testing.assert_close(a, loss(s[mask], t[mask]))
    summed = make(name, reduction="sum")(s, t, mask=mask)
    torch.testing.assert_close(summed, a * int(mask.sum()))


@pytest.mark.parametrize("name", NAMES)
def test_rows_must_match_and_repr_shows_options(name):
    loss = make(name)
    with pytest.raises(ValueError, match="rows"):
        loss(torch.randn(3, 6), torch.randn(4, 6))
    with pytest.raises(ValueError, match="reduction"):
        make(name, reduction="max")
    assert "student_dim=6" in repr(loss) and "teacher_dim=6" in repr(loss)


@pytest.mark.parametrize("name", NAMES)
def test_different_widths_projected_or_refused(name):
    cls = DISTILL_LOSSES.get(name)
    if cls.on_logits:
        with pytest.raises(ValueError, match="vocabularies must be the same"):
            make(name, 6, 9)
        return
    loss = make(name, 6, 9)
    aux = loss.auxiliary_parameters()
    assert aux and aux[0].shape == (9, 6)
    out = loss(torch.randn(5, 6), torch.randn(5, 9))
    out.backward()
    assert all(p.grad is not None for p in aux)


def test_registry_rejects_duplicates_and_non_subclasses():
    reg: Registry[DistillLoss] = Registry("distillation loss", DistillLoss)

    @reg.register("x")
    class X(DISTILL_LOSSES.get("mse")):
        pass

    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(X)
    with pytest.raises(TypeError, match="not a subclass of DistillLoss"):
        reg.register("y")(nn.Linear)
    with pytest.raises(KeyError, match="unknown distillation loss 'l3'; choose one of: cosine"):
        DISTILL_LOSSES.get("l3")
