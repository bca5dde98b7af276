from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from chemprune.engines.nas import NAS_ENGINES, Darts, DartsMinus, arch_parameters, mixed_ops
from tests.engines.nas.conftest import ToyNet, edge, even_task, mse


def test_the_search_selects_the_known_best_operation():
    torch.manual_seed(0)
    net = edge()
    search = Darts(model=net, loss=mse, lr=0.05, arch_lr=3e-2)
    train, valid = even_task(256, seed=1), even_task(256, seed=2)
    for _ in range(300):
        search.train_step(train, valid)
    assert search.genotype() == {"": "square"}
    w = net.weights().detach()
    # (none may hold weight: the square's own scale absorbs the mixing weight)
    others = [float(v) for n, v in zip(net.names, w, strict=True) if n in ("linear", "skip")]
    assert float(w[net.names.index("square")]) > 1.5 * max(others)


def test_alpha_moves_only_with_the_validation_batch():
    torch.manual_seed(0)
    base = ToyNet()
    valid = even_task(64, seed=3)

    def one_step(train, valid):
        net = copy.deepcopy(base)
        Darts(model=net, loss=mse).train_step(train, valid)
        return torch.cat([a.detach() for a in arch_parameters(net)])

    a1 = one_step(even_task(64, seed=1), valid)
    a2 = one_step(even_task(64, seed=2), valid)  # another training batch: same alpha
    a3 = one_step(even_task(64, seed=1), even_task(64, seed=4))  # another validation batch
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)
    assert not torch.equal(a1, a3)


def test_the_weight_step_leaves_alpha_and_the_arch_step_leaves_the_weights():
    torch.manual_seed(0)
    net = ToyNet()
    search = Darts(model=net, loss=mse)
    assert not {id(a) for a in search.alphas} & {id(p) for p in search.weights}
    before = [p.detach().clone() for p in net.parameters()]
    search.arch_gradients(even_task(16, seed=1), even_task(16, seed=2))
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    alphas = [a.detach().clone() for a in search.alphas]
    search.weight_step(even_task(16, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(search.alphas, alphas, strict=True))


def test_second_order_gradient_matches_the_exact_unrolled_gradient():
    torch.manual_seed(0)
    net = ToyNet().double()
    train = tuple(t.double() for t in even_task(32, seed=1))
    valid = tuple(t.double() for t in even_task(32, seed=2))
    xi = 0.1
    search = Darts(model=net, loss=mse, order=2, xi=xi)
    before = [p.detach().clone() for p in net.parameters()]
    search.arch_gradients(train, valid)
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    approx = torch.cat([a.grad for a in search.alphas])

    # exact: d/d alpha of L_val(w - xi grad_w L_train(w, alpha), alpha), by autograd twice
    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    g = torch.autograd.grad(mse(net, train), params, create_graph=True)
    unrolled = {n: p - xi * gi for n, p, gi in zip(names, params, g, strict=True)}
    out = torch.func.functional_call(net, unrolled, (valid[0],))
    loss = nn.functional.mse_loss(out, valid[1])
    exact = torch.cat(torch.autograd.grad(loss, search.alphas))
    first = torch.cat(torch.autograd.grad(mse(net, valid), search.alphas))
    torch.testing.assert_close(approx, exact, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(first, exact, rtol=1e-3, atol=1e-6)  # the correction matters


def test_cost_penalty_pushes_toward_cheap_operations():
    torch.manual_seed(0)
    net = edge()
    search = Darts(model=net, loss=lambda m, b: m(b[0]).sum() * 0, cost_weight=1.0, arch_lr=0.05)
    x = even_task(8)
    for _ in range(50):
        stats = search.train_step(x, x)
    assert search.genotype()[""] == "skip" and stats["expected_cost"] < 0.5


def test_darts_minus_decays_its_auxiliary_skip_to_zero():
    torch.manual_seed(0)
    net = ToyNet()
    search = DartsMinus(model=net, loss=mse, total_steps=4, beta0=1.0)
    data = even_task(16)
    seen = []
    for _ in range(4):
        search.train_step(data, data)
        seen.append(net.first.aux_skip)
    assert seen == [1.0, 0.75, 0.5, 0.25]
    assert search.beta() == 0.0
    derived = search.derive()
    assert not list(mixed_ops(derived))
    with pytest.raises(ValueError, match="total_steps"):
        DartsMinus(model=ToyNet(), loss=mse)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"order": 3}, "order"), ({"lr": 0.0}, "lr"), ({"cost_weight": -1.0}, "cost_weight"),
     ({"total_steps": 0}, "total_steps")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Darts(model=ToyNet(), loss=mse, **kwargs)
    with pytest.raises(ValueError, match="no MixedOp"):
        Darts(model=nn.Linear(2, 2), loss=mse)


def test_nan_loss_is_a_clear_error():
    net = ToyNet()
    search = Darts(model=net, loss=lambda m, b: m(b[0]).sum() * float("nan"))
    with pytest.raises(FloatingPointError, match="validation loss is nan"):
        search.train_step(even_task(4), even_task(4))


def test_registry_lists_the_engines():
    assert NAS_ENGINES.names() == ["darts", "darts_minus"]


class _MLP(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class _Chain(nn.Module):
    """Six edges in a row, each {mlp, skip, none}: deep enough for DARTS' skip collapse."""

    def __init__(self, d: int = 8, depth: int = 6) -> None:
        super().__init__()
        from chemprune.engines.nas import MixedOp, Zero

        self.edges = nn.ModuleList(
            MixedOp({"mlp": _MLP(d), "skip": nn.Identity(), "none": Zero()}) for _ in range(depth)
        )

    def forward(self, x):
        for e in self.edges:
            x = e(x)
        return x


def _tanh_task(seed: int, d: int = 8):
    b = torch.randn(d, d, generator=torch.Generator().manual_seed(7))
    x = torch.randn(256, d, generator=torch.Generator().manual_seed(seed))
    return x, torch.tanh(x @ b.T)


@pytest.mark.parametrize("engine, most_skips", [(Darts, True), (DartsMinus, False)])
def test_darts_minus_stops_the_collapse_onto_skip_connections(engine, most_skips):
    """Plain DARTS on a deep chain chooses skip on most edges (the known collapse: skip
    edges pass gradients from the first step); DARTS-' auxiliary skip takes that advantage
    away and the parametric operation is chosen on most edges."""
    torch.manual_seed(0)
    net = _Chain()
    kwargs = {"total_steps": 400} if engine is DartsMinus else {}
    search = engine(model=net, loss=mse, lr=0.05, arch_lr=3e-2, **kwargs)
    train, valid = _tanh_task(1), _tanh_task(2)
    for _ in range(400):
        search.train_step(train, valid)
    skips = list(search.genotype().values()).count("skip")
    assert (skips >= 4) if most_skips else (skips <= 1), search.genotype()


def test_cost_target_penalises_only_the_excess():
    net = edge()
    with torch.no_grad():
        net.alpha.zero_()  # expected cost (1 + 2) / 4 = 0.75 of a reference of 1
    zero = lambda m, b: m(b[0]).sum() * 0  # noqa: E731
    x = even_task(4)
    above = Darts(model=net, loss=zero, cost_weight=2.0, cost_target=0.5).valid_objective(x)
    below = Darts(model=net, loss=zero, cost_weight=2.0, cost_target=0.8).valid_objective(x)
    assert float(above.detach()) == pytest.approx(2.0 * 0.25) and float(below.detach()) == 0.0
    with pytest.raises(ValueError, match="cost_target"):
        Darts(model=net, loss=zero, cost_target=1.5)


def test_warmup_trains_the_weights_before_the_architecture():
    torch.manual_seed(0)
    net = ToyNet()
    search = Darts(model=net, loss=mse, warmup_steps=3)
    start = torch.cat([a.detach().clone() for a in arch_parameters(net)])
    w0 = [p.detach().clone() for p in net.parameters()]
    for _ in range(3):
        stats = search.train_step(even_task(16, seed=1), even_task(16, seed=2))
    assert torch.equal(torch.cat([a.detach() for a in arch_parameters(net)]), start)
    assert any(not torch.equal(p, b) for p, b in zip(net.parameters(), w0, strict=True))
    assert stats["valid_loss"] > 0
    search.train_step(even_task(16, seed=1), even_task(16, seed=2))
    assert not torch.equal(torch.cat([a.detach() for a in arch_parameters(net)]), start)
    with pytest.raises(ValueError, match="warmup_steps"):
        Darts(model=ToyNet(), loss=mse, warmup_steps=-1)
