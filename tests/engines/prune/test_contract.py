"""One contract, run over every registered pruning engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import chemprune.engines.prune  # noqa: F401  (registers the engines)
from chemprune.engines.prune import (
    PRUNERS,
    Pruner,
    channel_groups,
    count_parameters,
    shrink,
    weight_groups,
)
from chemprune.engines.registry import Registry
from tests.engines.prune.conftest import tiny_mlp

MASKING = [n for n in PRUNERS.names() if PRUNERS.get(n).unit == "units"]
UNSTRUCTURED = [n for n in MASKING if not PRUNERS.get(n).structured_only]
RANK = [n for n in PRUNERS.names() if PRUNERS.get(n).unit == "rank"]


def test_every_engine_is_under_one_of_the_contracts():
    assert sorted(MASKING + RANK) == sorted(PRUNERS.names()) and RANK == ["force"]


@pytest.mark.parametrize("name", PRUNERS.names())
def test_capability_flags_match_what_the_engine_offers(name):
    """Pipelines ask the engine (never its name) what it needs: the flags must be true."""
    import inspect

    cls = PRUNERS.get(name)
    params = inspect.signature(cls.__init__).parameters
    assert cls.needs_metric == ("metric" in params and "max_drop" in params)
    assert cls.uses_profiles == ("profile_fn" in params)
    assert cls.supports_threshold == hasattr(cls, "threshold")
    assert cls.needs_data == (cls.observe is not Pruner.observe)  # the base one does nothing
    assert cls.trains_first == (name in ("ssl", "force"))  # the regularised first phase


def make(name: str, groups, sparsity: float) -> Pruner:
    return PRUNERS.get(name)(groups=groups, sparsity=sparsity)


def train_a_bit(model: nn.Module, pruner: Pruner, steps: int = 5) -> None:
    opt = torch.optim.SGD(list(model.parameters()) + pruner.auxiliary_parameters(), lr=0.1)
    x, y = torch.randn(32, 10), torch.randn(32, 3)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        pruner.regularize(model)
        opt.step()


@pytest.mark.parametrize("name", UNSTRUCTURED)
def test_unstructured_target_reached_and_kept(name):
    torch.manual_seed(0)
    model = tiny_mlp()
    groups = weight_groups(model)
    pruner = make(name, groups, 0.6)
    pruner.apply(model)
    train_a_bit(model, pruner)
    n = sum(model[i].weight.numel() for i in (0, 2, 4))
    zeros = sum(int((model[i].weight == 0).sum()) for i in (0, 2, 4))
    assert zeros == pytest.approx(0.6 * n, abs=2)


@pytest.mark.parametrize("name", MASKING)
def test_structured_shrink_equals_masked(name):
    torch.manual_seed(0)
    model = tiny_mlp()
    x = torch.randn(9, 10)
    groups = channel_groups(model, x)
    pruner = make(name, groups, 0.5)
    if pruner.needs_data:
        with pytest.raises(ValueError, match="observe"):
            pruner.apply(model)
    pruner.observe(model, x, torch.arange(9) % 3)  # labelled data (a no-op for most engines)
    pruner.apply(model)
    masked = model(x)
    shrink(model, groups)
    torch.testing.assert_close(model(x), masked, atol=1e-5, rtol=1e-5)
    kept = (model[0].out_features, model[2].out_features)
    assert min(kept) >= 1 and 12 <= sum(kept) <= 13  # half of 24 channels (at least 1 per layer)
    assert model[2].in_features == kept[0] and model[4].in_features == kept[1]


@pytest.mark.parametrize("name", RANK)
def test_rank_target_reached_kept_and_factorized(name):
    """A rank engine's sparsity is the share of each layer's rank removed: reached by apply,
    restored by the schedule after training moves the weights, and made physical by
    factorize with the same function."""
    from chemprune.engines.prune import Schedule
    from chemprune.engines.prune.lowrank import LowRankLinear

    torch.manual_seed(0)
    model = tiny_mlp()
    groups = weight_groups(model)
    pruner = PRUNERS.get(name)(groups=groups, sparsity=0.75, schedule=Schedule(begin=5))
    ranks = pruner.apply(model)
    assert ranks == {"0": 2, "2": 2, "4": 1}  # full ranks 10, 8, 3 (75% of 10 rounds to 8)
    train_a_bit(model, pruner)
    assert torch.linalg.matrix_rank(model[0].weight) > 2  # training moved off the subspace
    assert pruner.step(model, 5)
    for i, r in ((0, 2), (2, 2), (4, 1)):
        assert int(torch.linalg.matrix_rank(model[i].weight, atol=1e-5)) == r
    x = torch.randn(9, 10)
    before = model(x)
    split = pruner.factorize(model)
    assert split == {"0": (10, 2), "2": (8, 2), "4": (3, 1)}
    assert isinstance(model[0], LowRankLinear) and model[0].rank == 2
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    assert count_parameters(model)[0] < 10 * 16 + 16 * 8


@pytest.mark.parametrize("name", PRUNERS.names())
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(name, bad):
    with pytest.raises(ValueError, match="sparsity must be in"):
        make(name, weight_groups(tiny_mlp()), bad)


@pytest.mark.parametrize("name", [n for n in PRUNERS.names() if PRUNERS.get(n).structured_only])
def test_structured_only_engines_refuse_weight_groups(name):
    with pytest.raises(ValueError, match="weight group"):
        make(name, weight_groups(tiny_mlp()), 0.5)


def test_no_prunable_layers_and_unknown_method():
    with pytest.raises(ValueError, match="no prunable layers"):
        weight_groups(nn.Sequential(nn.ReLU(), nn.Tanh()))
    with pytest.raises(KeyError, match="unknown pruning method 'l0'; choose one of: .*magnitude"):
        PRUNERS.get("l0")
    with pytest.raises(ValueError, match="nothing to prune"):
        make("magnitude", [], 0.5)


def test_registry_rejects_duplicates_and_non_subclasses():
    reg: Registry[Pruner] = Registry("pruning method", Pruner)

    @reg.register("x")
    class X(PRUNERS.get("magnitude")):
        pass

    with pytest.raises(ValueError, match="already registered"):
        reg.register("x")(X)
    with pytest.raises(TypeError, match="not a subclass of Pruner"):
        reg.register("y")(nn.Linear)
    assert count_parameters(tiny_mlp())[0] == 10 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
