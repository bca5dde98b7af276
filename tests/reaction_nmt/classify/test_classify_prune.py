"""Pruning the reaction classifier: budgets, real removal, CDC and the baselines."""

from __future__ import annotations

import copy

import pytest
import torch

from chemprune.engines.prune import shrink
from chemprune.engines.prune.masks import apply_masks, group_masks
from reaction_nmt.classify.data import Vocabulary, read_split
from reaction_nmt.classify.model import ReactionCNN
from reaction_nmt.classify.prune import (
    _macs,
    class_features,
    classifier_groups,
    keep_counts,
    prune_classifier,
)
from reaction_nmt.classify.train import encode_reactions


@pytest.fixture
def setup(liu_dir):
    reactions = read_split(liu_dir, "train")
    vocab = Vocabulary.build(reactions)
    torch.manual_seed(0)
    model = ReactionCNN(vocab_size=len(vocab), channels=(12, 16, 10), embed_dim=8).eval()
    return model, encode_reactions(reactions, vocab, 64)


def test_keep_counts_meet_the_flop_budget(setup):
    model, _ = setup
    for frac in (1 / 1.8, 1 / 3):
        counts = keep_counts(model, frac)
        assert _macs(model, counts, 100) <= frac * _macs(model, model.channels, 100)
        assert _macs(model, [c + 1 for c in counts], 100) > frac * _macs(model, model.channels, 100)


def test_shrunk_equals_masked(setup):
    model, (x, _) = setup
    groups = classifier_groups(model)
    keep = {g: torch.arange(g.size) % 2 == 0 for g in groups}
    masked = copy.deepcopy(model)
    apply_masks(masked, group_masks(masked, keep))
    small = copy.deepcopy(model)
    apply_masks(small, group_masks(small, keep))
    shrink(small, groups)
    assert small.channels == [6, 8, 5]
    torch.testing.assert_close(small(x), masked(x), atol=1e-5, rtol=1e-5)
    rebuilt = ReactionCNN.from_config(small.config())
    rebuilt.load_state_dict(small.state_dict())


@pytest.mark.parametrize("method", ["cdc", "magnitude", "random"])
def test_prune_classifier(setup, method):
    model, data = setup
    report = prune_classifier(model, data, method=method, flops_fraction=1 / 3)
    assert report["flops_fraction"] <= 1 / 3 and model.channels == report["channels_after"]
    assert model(data[0][:4]).shape == (4, 10)


def test_class_features_ignore_padding(setup):
    model, (x, _) = setup
    f = class_features(model, x[:3])
    padded = torch.cat([x[:3], torch.zeros(3, 20, dtype=x.dtype)], 1)
    for k, v in class_features(model, padded).items():
        torch.testing.assert_close(v, f[k])
    assert [v.shape[1] for v in f.values()] == [12, 16, 10]
