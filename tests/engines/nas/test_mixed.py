from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.nas import (
    MixedOp,
    Zero,
    arch_parameters,
    derive_modules,
    genotype,
    mixed_ops,
)
from tests.engines.nas.conftest import ToyNet, edge


def test_alpha_is_outside_the_parameters_but_in_the_state_dict():
    net = ToyNet()
    alphas = arch_parameters(net)
    assert len(alphas) == 2 and all(a.shape == (4,) for a in alphas)
    ids = {id(p) for p in net.parameters()}
    assert not any(id(a) in ids for a in alphas)
    state = net.state_dict()
    assert "first.alpha" in state and "second.alpha" in state
    other = ToyNet()
    with torch.no_grad():
        alphas[0].fill_(0.7)
    other.load_state_dict(net.state_dict())
    assert torch.equal(arch_parameters(other)[0], alphas[0])


def test_state_dict_of_other_candidates_is_refused():
    net = ToyNet()
    state = net.state_dict()
    state["first.alpha"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match="different candidate operations"):
        ToyNet().load_state_dict(state)


def test_forward_is_the_softmax_weighted_sum():
    torch.manual_seed(0)
    op = edge()
    with torch.no_grad():
        op.alpha.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    x = torch.randn(5, 4)
    w = torch.softmax(op.alpha.detach(), 0)
    parts = [m(x) for m in op.ops.values()]
    expected = sum(wk * p for wk, p in zip(w, parts, strict=True))
    torch.testing.assert_close(op(x), expected)
    op.aux_skip = 0.3
    torch.testing.assert_close(op(x), expected + 0.3 * x)


def test_none_is_never_chosen():
    op = edge()
    with torch.no_grad():
        op.alpha.copy_(torch.tensor([0.1, 0.3, 0.2, 5.0]))  # none largest
    assert op.chosen() == "square"
    with pytest.raises(ValueError, match="none"):
        MixedOp({"a": Zero(), "b": Zero()})
    with pytest.raises(ValueError, match="at least two"):
        MixedOp({"a": nn.Identity()})


def test_expected_cost_weights_the_operations_costs():
    op = edge()
    with torch.no_grad():
        op.alpha.zero_()
    assert float(op.expected_cost().detach()) == pytest.approx((1.0 + 2.0 + 0.0 + 0.0) / 4)


def test_derive_equals_the_supernet_restricted_to_the_chosen_ops():
    torch.manual_seed(0)
    net = ToyNet()
    with torch.no_grad():
        net.first.alpha.copy_(torch.tensor([0.0, 3.0, 1.0, 9.0]))  # none excluded -> square
        net.second.alpha.copy_(torch.tensor([2.0, 0.0, 1.0, 0.0]))  # linear
    assert genotype(net) == {"first": "square", "second": "linear"}
    x = torch.randn(6, 4)
    # the supernet restricted to the chosen operations: one-hot mixing weights
    with torch.no_grad():
        net.first.alpha.copy_(torch.tensor([-1e9, 0.0, -1e9, -1e9]))
        net.second.alpha.copy_(torch.tensor([0.0, -1e9, -1e9, -1e9]))
    restricted = net(x)
    derived = derive_modules(net)
    assert not list(mixed_ops(derived))
    torch.testing.assert_close(derived(x), restricted)
    assert isinstance(derived.second, nn.Linear)


def test_alpha_moves_with_dtype():
    net = ToyNet().double()
    assert all(a.dtype == torch.float64 for a in arch_parameters(net))
    assert net(torch.randn(2, 4, dtype=torch.float64)).dtype == torch.float64


def test_nested_mixed_operations_are_derived_all_the_way_down():
    inner = MixedOp({"lin": nn.Linear(4, 4), "skip": nn.Identity()})
    with torch.no_grad():
        inner.alpha.copy_(torch.tensor([1.0, 0.0]))
    outer = MixedOp({"seq": nn.Sequential(inner, nn.Tanh()), "none": Zero()})
    derived = derive_modules(outer)
    assert not list(mixed_ops(derived)) and isinstance(derived[0], nn.Linear)
    wrapped = derive_modules(nn.Sequential(MixedOp({"seq": nn.Sequential(
        MixedOp({"lin": nn.Linear(4, 4), "skip": Zero()}), nn.Tanh()), "none": Zero()})))  # fmt: skip
    assert not list(mixed_ops(wrapped)) and isinstance(wrapped[0][0], nn.Linear)
