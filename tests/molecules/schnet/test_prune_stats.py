"""Regression terminals: target bins and per-molecule SchNet channel activations."""

from __future__ import annotations

import pytest
import torch

from chemprune.engines.prune.discriminant import CDCPruner
from chemprune.engines.prune.masks import apply_masks, group_masks
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import schnet_groups
from chemprune.molecules.schnet.prune_stats import (
    observe_targets,
    quantile_edges,
    schnet_channel_features,
    target_bins,
)


def test_quantile_bins_have_equal_counts():
    y = torch.arange(100.0).flip(0)
    edges = quantile_edges(y, 4)
    assert edges.tolist() == pytest.approx([24.75, 49.5, 74.25])
    bins = target_bins(y, edges)
    assert torch.bincount(bins).tolist() == [25, 25, 25, 25]
    assert bins[0] == 3 and bins[-1] == 0  # the largest target is in the top bin
    assert target_bins(torch.tensor([49.5]), edges).item() == 2  # an edge value goes above it


@pytest.mark.parametrize(
    "values, bins, message",
    [([1.0, 2.0], 3, "cannot fill"), ([1.0, float("nan"), 2.0], 2, "NaN"), ([1.0] * 4, 1, "2")],
)
def test_bad_targets_are_refused(values, bins, message):
    with pytest.raises(ValueError, match=message):
        quantile_edges(torch.tensor(values), bins)


@pytest.fixture
def schnet_set(qm9_small):
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10)
    data = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    return model.eval(), data


def test_features_are_the_molecule_means_of_the_channels(schnet_set):
    model, data = schnet_set
    groups = schnet_groups(model, "kernel+interaction", blocks=[1])
    batch = data.collate(list(range(6)))
    feats = schnet_channel_features(groups)(model, batch)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "interactions.1.filters": (6, 8), "interactions.1.filter_hidden": (6, model.interactions[1].filter_network.hidden_channels),
        "interactions.1.interaction": (6, 16),
    }  # fmt: skip
    # the filter channels of molecule 2 alone: its atoms' aggregated messages, averaged
    one = data.collate([2])
    seen = {}
    h = model.interactions[1].f2out.register_forward_pre_hook(lambda m, i: seen.update(x=i[0]))
    model(one.z, one.pos, one.batch)
    h.remove()
    assert torch.allclose(feats["interactions.1.filters"][2].float(), seen["x"].mean(0), atol=1e-5)


def test_a_masked_filter_channel_reads_zero(schnet_set):
    model, data = schnet_set
    groups = schnet_groups(model, "filter")
    keep = {g: torch.ones(g.size, dtype=torch.bool) for g in groups}
    keep[groups[0]][3] = False  # interactions.0.filters, channel 3
    apply_masks(model, group_masks(model, keep))
    feats = schnet_channel_features(groups)(model, data.collate(list(range(5))))
    assert feats["interactions.0.filters"][:, 3].abs().max() == 0
    assert feats["interactions.0.filters"][:, 2].abs().max() > 0


def test_groups_without_activations_are_refused(schnet_set):
    model, _ = schnet_set
    with pytest.raises(ValueError, match="atom_basis"):
        schnet_channel_features(schnet_groups(model, "atom_basis"))


def test_cdc_scores_schnet_channels_from_target_bins(schnet_set):
    model, data = schnet_set
    groups = schnet_groups(model, "kernel")
    pruner = CDCPruner(groups=groups, sparsity=0.5, num_classes=4,
                       features=schnet_channel_features(groups))  # fmt: skip
    edges = observe_targets(pruner, model, data, list(range(64)), bins=4, batch_size=16)
    assert len(edges) == 3
    stats = pruner.stats["interactions.0.filters"]
    assert stats.n.tolist() == [16, 16, 16, 16]
    scores = pruner.score(model)
    assert all(torch.isfinite(s).all() and s.shape == (g.size,) for g, s in
               ((g, scores[g.name]) for g in groups))  # fmt: skip
    assert scores["interactions.0.filters"].std() > 0  # channels are told apart
