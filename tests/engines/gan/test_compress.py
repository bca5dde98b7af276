"""Generator channel pruning: budgets, content restriction, real removal."""

from __future__ import annotations

import copy

import pytest
import torch

from chemprune.engines.gan.compress import (
    content_scores,
    generator_groups,
    macs_with,
    magnitude_scores,
    prune_generator,
    select_channels,
)
from chemprune.engines.prune.masks import apply_masks, group_masks
from tests.engines.gan.conftest import tiny_critic, tiny_generator


def test_groups_cover_every_hidden_layer():
    g = tiny_generator(k=3)
    groups = generator_groups(g)
    assert [gr.size for gr in groups] == [16, 24, 32]
    assert len(groups[0].mask_slots) == 6  # three first layers' rows and biases
    assert macs_with(g, g.hidden_widths()) == g.macs()


@pytest.mark.parametrize("global_", [True, False])
def test_selection_meets_the_budget(global_):
    g = tiny_generator()
    keep = select_channels(g, magnitude_scores(g), 0.3, global_=global_)
    widths = [int(keep[gr.name].sum()) for gr in generator_groups(g)]
    assert min(widths) >= 1 and macs_with(g, widths) <= 0.3 * g.macs()
    assert macs_with(g, [w + 1 for w in widths]) > 0.3 * g.macs()  # not needlessly small
    with pytest.raises(ValueError, match="target_macs"):
        select_channels(g, magnitude_scores(g), 0.0, global_=global_)


def test_uniform_selection_keeps_the_top_magnitudes_in_each_layer():
    g = tiny_generator()
    scores = magnitude_scores(g)
    keep = select_channels(g, scores, 0.5, global_=False)
    for name, k in keep.items():
        assert scores[name][k].min() >= scores[name][~k].max()


def test_shrunk_generator_gives_the_masked_outputs():
    g = tiny_generator()
    keep = select_channels(g, magnitude_scores(g), 0.25, global_=False)
    masked = copy.deepcopy(g)
    groups = generator_groups(masked)
    apply_masks(masked, group_masks(masked, {gr: keep[gr.name].float() for gr in groups}))
    z, which = torch.randn(6, g.z_dim), torch.arange(6) % 3
    report = prune_generator(g, keep)
    assert g.macs() <= 0.25 * masked.macs() + 1e-9
    assert [after for _, after in report.values()] == g.hidden_widths() == g.config()["hidden"]
    for a, b in zip(g(z, which), masked(z, which), strict=True):
        torch.testing.assert_close(a, b)
    rebuilt = type(g).from_config(g.config())  # a pruned generator rebuilds from its config
    rebuilt.load_state_dict(g.state_dict())


def test_content_scores_see_only_the_content():
    g, d = tiny_generator(), tiny_critic(k=0)
    scores = content_scores(g, d, batches=2, batch_size=8)
    assert all(bool((s > 0).any()) for s in scores.values())
    with torch.no_grad():  # every slot padding: no content, no gradient, no score
        g.nodes.bias.view(g.max_atoms, g.atom_types)[:, 0] = 1e3
    empty = content_scores(g, d, batches=2, batch_size=8)
    assert all(float(s.abs().sum()) == 0 for s in empty.values())
    assert all(p.requires_grad for p in d.parameters())  # the critic is left trainable
