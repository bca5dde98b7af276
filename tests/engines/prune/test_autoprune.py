"""AutoPrune: gate gradients follow the weakly coupled rules; irrelevant inputs get switched off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.prune import (
    AutoPrunePruner,
    Schedule,
    get_masks,
    input_groups,
    weight_groups,
)


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


def _relevance_problem(n_inputs: int = 10):
    """y depends on inputs 0-2 only, and the model starts from the exact solution."""
    torch.manual_seed(0)
    x = torch.randn(512, n_inputs)
    coef = torch.zeros(n_inputs)
    coef[:3] = torch.tensor([2.0, -1.5, 1.0])
    y = x @ coef.reshape(-1, 1)
    model = nn.Sequential(nn.Linear(n_inputs, 1))
    with torch.no_grad():
        model[0].weight.copy_(coef.reshape(1, -1) + 0.01 * torch.randn(1, n_inputs))
        model[0].bias.zero_()
    return x, y, model


def _train_gates(model, pruner, x, y, steps):
    w_opt = torch.optim.SGD(model.parameters(), lr=0.01)
    m_opt = torch.optim.Adam(pruner.auxiliary_parameters(), lr=0.01)
    for step in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        w_opt.zero_grad()
        m_opt.zero_grad()
        nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
        pruner.regularize(model)
        w_opt.step()
        m_opt.step()
        assert pruner.step(model, step) is False  # the loop hook never freezes the gates


def test_step_leaves_the_gates_training():
    x, y, model = _relevance_problem()
    pruner = AutoPrunePruner(groups=input_groups(model, ["0"]), sparsity=0.5, init=0.05)
    (m,) = pruner.attach(model)
    _train_gates(model, pruner, x, y, steps=20)
    assert pruner._attached and pruner.aux["0:input"] is m
    assert not torch.allclose(m.detach(), torch.full_like(m, 0.05))  # it learnt
    assert pruner.holders["0:input"].offset == 0.0  # gates close at m = 0 (the paper's rule)


@pytest.mark.parametrize("target", [0.5, 0.7])
def test_rank_gates_hold_the_target_and_apply_changes_nothing(target):
    x, y, model = _relevance_problem()
    groups = input_groups(model, ["0"])
    pruner = AutoPrunePruner(
        groups=groups, sparsity=target, lam=1e-3, init=0.05, rank_gates=True,
        schedule=Schedule(begin=0, end=100, power=3.0),
    )  # fmt: skip
    pruner.attach(model)
    _train_gates(model, pruner, x, y, steps=20)
    assert 0 < pruner.gate_sparsity() < target  # the ramp is under way
    _train_gates(model, pruner, x, y, steps=300)
    assert pruner.gate_sparsity() == pytest.approx(target)  # exactly, at every step
    gated = model(x)
    closed = (pruner.gate_scores()["0:input"] <= 0).nonzero().flatten().tolist()
    assert min(closed) >= 3  # only irrelevant inputs are closed
    pruner.apply(model, target)  # freezing the gates changes nothing
    torch.testing.assert_close(model(x), gated)
    assert (get_masks(model)["0.weight"][0] == 0).nonzero().flatten().tolist() == closed
