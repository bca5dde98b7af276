"""AutoPrune: gate gradients follow the weakly coupled rules; irrelevant inputs get switched off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.prune import AutoPrunePruner, get_masks, input_groups, weight_groups


def test_aux_params_are_separate_and_gradients_follow_the_rules():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    pruner = AutoPrunePruner(groups=weight_groups(model), sparsity=0.5, alpha=0.1, init=0.5)
    aux = pruner.attach(model)
    assert len(aux) == 1 and all(a is not p for a in aux for p in model.parameters())
    assert not any("aux" in k or k.endswith(".m") for k in model.state_dict())
    m = aux[0]
    with torch.no_grad():
        m[0, 0] = -1.0  # one gate closed
    w = model[0].parametrizations.weight.original
    x = torch.randn(4, 3)
    out = model(x)
    assert model[0].weight[0, 0] == 0
    out.sum().backward()
    dt = torch.ones(4, 2).T @ x  # dL/dt for L = sum(x @ t.T + b)
    torch.testing.assert_close(w.grad, dt * (m.detach() > 0))  # masked weight gradient
    sur = torch.where(m.detach() > 0, 1.0, 0.1)
    torch.testing.assert_close(m.grad, dt * torch.sign(w.detach()) * sur)  # sgn(w), not w
    before = m.grad.clone()
    pruner.regularize(model)
    torch.testing.assert_close(m.grad - before, pruner.lam * sur)


def test_gates_close_on_irrelevant_inputs():
    """y depends on 3 of 10 inputs: the other 7 input gates must close, the 3 stay open."""
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = x[:, :3] @ torch.tensor([[2.0], [-1.5], [1.0]])
    model = nn.Sequential(nn.Linear(10, 1))
    dense_opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(100):  # AutoPrune starts from a trained dense model
        dense_opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        dense_opt.step()
    pruner = AutoPrunePruner(groups=input_groups(model, ["0"]), sparsity=0.7, lam=0.02, init=0.05)
    pruner.attach(model)
    w_opt = torch.optim.SGD(model.parameters(), lr=0.05)
    m_opt = torch.optim.SGD(pruner.auxiliary_parameters(), lr=0.05)
    for step in range(400):
        idx = torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))
        w_opt.zero_grad()
        m_opt.zero_grad()
        nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
        pruner.regularize(model)
        w_opt.step()
        m_opt.step()
    gates = pruner.aux["0:input"].detach() > 0
    assert gates.tolist() == [True] * 3 + [False] * 7
    assert pruner.gate_sparsity() == pytest.approx(0.7)
    pruner.apply(model)  # learnt gates become fixed masks
    mask = get_masks(model)["0.weight"]
    assert mask[0, :3].all() and not mask[0, 3:].any()
    assert nn.functional.mse_loss(model(x), y) < 0.05


def test_surrogates_and_bad_arguments():
    groups = weight_groups(nn.Sequential(nn.Linear(2, 2)))
    for bad in [
        dict(ste="tanh"),
        dict(penalty="l2"),
        dict(weight_grad="none"),
        dict(lam=-1),
        dict(init=0.0),
        dict(unit_cost={"nope": 1.0}),
    ]:
        with pytest.raises(ValueError):
            AutoPrunePruner(groups=groups, sparsity=0.5, **bad)


def test_closed_gate_recovers_with_straight_weight_gradients():
    """A weight that starts with the wrong sign: its gate closes first, then reopens."""
    torch.manual_seed(0)
    x = torch.randn(256, 2)
    y = x @ torch.tensor([[-1.0], [1.0]])
    model = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, 1.0]]))
    pruner = AutoPrunePruner(
        groups=weight_groups(model), sparsity=0.5, lam=0.0, init=0.02, weight_grad="straight"
    )
    (m,) = pruner.attach(model)
    w_opt = torch.optim.SGD(model.parameters(), lr=0.05)
    m_opt = torch.optim.SGD([m], lr=0.05)
    closed_at = reopened_at = None
    for step in range(100):
        w_opt.zero_grad()
        m_opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        w_opt.step()
        m_opt.step()
        if closed_at is None and bool(m[0, 0] <= 0):
            closed_at = step
        if closed_at is not None and reopened_at is None and bool(m[0, 0] > 0):
            reopened_at = step
    # the gate closed while w had the wrong sign, w kept learning behind the closed gate, and
    # once sgn(w) agreed with the loss the gate reopened
    assert closed_at is not None and reopened_at is not None and reopened_at > closed_at
    assert float(model[0].parametrizations.weight.original[0, 0].detach()) < 0
