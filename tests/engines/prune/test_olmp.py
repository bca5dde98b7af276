"""OLMP: the metric constraint holds, thresholds follow the partition, masks can recover."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.prune import OLMPPruner, weight_groups
from chemprune.engines.prune.partition import partition_groups


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 10, generator=torch.Generator().manual_seed(99)) * 3
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 10, generator=g), y


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    )
    x, y = blobs(512, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def accuracy_on(x, y):
    def metric(m: nn.Module) -> float:
        with torch.no_grad():
            return float((m(x).argmax(1) == y).float().mean())

    return metric


@pytest.mark.parametrize("max_drop", [0.0, 0.05])
def test_constraint_respected_and_compression_found(trained, max_drop):
    model = nn.Sequential(*[m for m in trained])  # a shallow copy is enough: masks are added
    model.load_state_dict(trained.state_dict())
    xv, yv = blobs(400, 1)
    metric = accuracy_on(xv, yv)
    before = metric(model)
    pruner = OLMPPruner(
        groups=weight_groups(model),
        sparsity=0.999,
        metric=metric,
        max_drop=max_drop,
        budget=150,
        seed=0,
    )
    res = pruner.search(model)
    after = metric(model)
    assert after >= before - max_drop - 1e-9
    assert res.metric == pytest.approx(after)
    assert 1 - res.kept > 0.5  # a well-separated toy problem tolerates heavy pruning
    assert res.feasible_evaluations > 0
    assert set(pruner.c) == {"0", "2", "4"}


def test_warm_start_goes_further_with_a_small_budget_and_keeps_the_constraint(trained):
    xv, yv = blobs(400, 1)
    metric = accuracy_on(xv, yv)
    reached, calls = {}, {}
    for warm in (0, 8):
        model = nn.Sequential(*[m for m in trained])
        model.load_state_dict(trained.state_dict())
        before = metric(model)
        pruner = OLMPPruner(
            groups=weight_groups(model),
            sparsity=0.999,
            metric=metric,
            max_drop=0.01,
            budget=6,
            seed=0,
            warm_start=warm,
        )
        n = [0]

        def counted(m: nn.Module, n=n) -> float:
            n[0] += 1
            return metric(m)

        pruner.metric = counted
        res = pruner.search(model)
        assert metric(model) >= before - 0.01 - 1e-9
        assert res.evaluations == 6 + warm and len(res.history) == res.evaluations
        calls[warm] = n[0]
        reached[warm] = 1 - res.kept
    # six steps of the evolution strategy from c = -3 prune little; the bisection jumps ahead
    assert reached[8] > reached[0] + 0.2
    # one call for the reference; the strategy's first candidate (where the bisection ended) is
    # not measured twice
    assert calls[0] == 1 + 6 and calls[8] == 1 + 6 + 8 - 1
    with pytest.raises(ValueError, match="warm_start must be >= 0"):
        OLMPPruner(groups=weight_groups(trained), sparsity=0.5, warm_start=-1)


def test_warm_start_after_the_weights_moved_bisects_below_the_last_thresholds():
    """Kept weights that shrank since the last search (as in retraining) fall under the
    hysteresis bound at the last thresholds; the warm start then finds feasible masks below
    them instead of spending its evaluations above."""
    from chemprune.engines.prune.masks import get_masks, get_param

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))

    def kept_percent(m: nn.Module) -> float:  # the constraint: keep >= 70% of the weights
        masks = list(get_masks(m).values())
        if not masks:
            return 100.0
        return 100 * sum(float(v.sum()) for v in masks) / sum(v.numel() for v in masks)

    pruner = OLMPPruner(groups=weight_groups(model), sparsity=0.999,
                        metric=kept_percent, max_drop=30.0, reference="initial", budget=4, seed=0,
                        warm_start=8)  # fmt: skip
    pruner.search(model)
    with torch.no_grad():
        for g in pruner.groups:
            for slot in g.mask_slots:
                get_param(model, slot, original=True).mul_(0.8)
    res = pruner.search(model)
    bisection = res.history[:8]
    assert bisection[0][1] < 70.0  # the last thresholds no longer meet the constraint
    assert any(value >= 70.0 for _, value in bisection[1:])  # found below them
    assert kept_percent(model) >= 70.0 and res.feasible_evaluations > 0


def test_partition_strategies():
    model = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Conv1d(1, 2, 1)
    )
    groups = weight_groups(model)
    assert partition_groups(groups, "global") == {"global": ["0", "2", "4"]}
    assert partition_groups(groups, "type") == {"Linear": ["0", "2"], "Conv1d": ["4"]}
    assert partition_groups(groups, lambda g: "first" if g.name == "0" else "rest") == {
        "first": ["0"],
        "rest": ["2", "4"],
    }
    with pytest.raises(ValueError, match="missing \\['4'\\].*repeated \\['0'\\]"):
        partition_groups(groups, {"a": ["0", "2"], "b": ["0"]})
    with pytest.raises(ValueError, match="unknown grouping strategy"):
        partition_groups(groups, "per-head")
    pruner = OLMPPruner(groups=groups, sparsity=0.5, partition="type")
    assert set(pruner.c) == {"Linear", "Conv1d"}


def test_pruned_weights_recover_under_straight_through(trained):
    model = nn.Sequential(nn.Linear(10, 8))
    pruner = OLMPPruner(groups=weight_groups(model), sparsity=0.5, budget=30)
    pruner.search(model)
    w = model[0].parametrizations.weight.original
    pruned = model[0].weight == 0
    assert pruned.any()
    # gradient reaches pruned weights (DNS), so growing them past 1.1 t restores them
    model(torch.randn(3, 10)).sum().backward()
    assert (w.grad[pruned] != 0).any()
    with torch.no_grad():
        w[pruned] = 10.0
    pruner.update_masks(model)
    assert (model[0].weight != 0).all()


def test_bad_arguments():
    groups = weight_groups(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="unknown nevergrad optimizer"):
        OLMPPruner(groups=groups, sparsity=0.5, optimizer="Magic")
    with pytest.raises(ValueError, match="max_drop"):
        OLMPPruner(groups=groups, sparsity=0.5, max_drop=-1)
    with pytest.raises(ValueError, match="bounds"):
        OLMPPruner(groups=groups, sparsity=0.5, bounds=(2, 1))
