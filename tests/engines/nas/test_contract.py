"""One contract, run over every registered architecture-search engine."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import chemprune.engines.nas  # noqa: F401  (registers the engines)
from chemprune.engines.nas import NAS_ENGINES, arch_parameters, mixed_ops
from tests.engines.nas.conftest import ToyNet, even_task, mse


def make(name: str, net, order: int = 1):
    return NAS_ENGINES.get(name)(model=net, loss=mse, order=order, total_steps=10)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("name", NAS_ENGINES.names())
def test_train_step_updates_weights_and_alpha_and_reports(name, order):
    torch.manual_seed(0)
    net = ToyNet()
    search = make(name, net, order)
    alphas = [a.detach().clone() for a in arch_parameters(net)]
    weights = [p.detach().clone() for p in net.parameters()]
    stats = search.train_step(even_task(32, seed=1), even_task(32, seed=2))
    assert {"train_loss", "valid_loss", "step"} <= set(stats) and stats["step"] == 1
    assert math.isfinite(stats["train_loss"]) and math.isfinite(stats["valid_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(arch_parameters(net), alphas, strict=True))
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), weights, strict=True))


@pytest.mark.parametrize("name", NAS_ENGINES.names())
def test_derive_leaves_no_mixed_op(name):
    torch.manual_seed(0)
    net = ToyNet()
    search = make(name, net)
    search.train_step(even_task(16, seed=1), even_task(16, seed=2))
    chosen = search.genotype()
    derived = search.derive()
    assert not list(mixed_ops(derived)) and set(chosen) == {"first", "second"}
    assert "none" not in chosen.values()
    assert derived(torch.randn(3, 4)).shape == (3, 4)


@pytest.mark.parametrize("name", NAS_ENGINES.names())
def test_resume_continues_exactly(name):
    torch.manual_seed(0)
    net = ToyNet()
    search = make(name, net)
    batches = [(even_task(16, seed=s), even_task(16, seed=s + 50)) for s in range(4)]
    for tr, va in batches[:2]:
        search.train_step(tr, va)
    saved_model, saved_search = copy.deepcopy(net.state_dict()), copy.deepcopy(search.state_dict())
    for tr, va in batches[2:]:
        search.train_step(tr, va)

    other = ToyNet()
    other.load_state_dict(saved_model)
    resumed = make(name, other)
    resumed.load_state_dict(saved_search)
    for tr, va in batches[2:]:
        resumed.train_step(tr, va)
    for a, b in zip(arch_parameters(net), arch_parameters(other), strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(net.parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", NAS_ENGINES.names())
def test_foreign_state_is_refused(name):
    other = [n for n in NAS_ENGINES.names() if n != name][0]
    state = make(other, ToyNet()).state_dict()
    with pytest.raises(ValueError, match="search state"):
        make(name, ToyNet()).load_state_dict(state)
