"""Attention AutoPrune on SchNet's filter channels."""

from __future__ import annotations

import pytest
import torch

from chemprune.engines.prune import AttentionPruner, shrink
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import schnet_groups
from chemprune.molecules.schnet.prune_stats import schnet_filter_profiles


@pytest.fixture
def setup(qm9_small):
    torch.manual_seed(0)
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    model = SchNet(
        hidden_channels=16,
        filter_channels=12,
        num_interactions=2,
        num_gaussians=12,
        readout="mean",
        mean=6.8,
        std=1.3,
    )
    return model, ms


def test_profiles_are_filter_responses_over_distance(setup):
    model, _ = setup
    (g,) = schnet_groups(model, "filter", blocks=[1])
    prof = schnet_filter_profiles(8)(model, g)
    assert prof.shape == (12, 8)
    blk = model.interactions[1]
    d = torch.linspace(0, model.cutoff, 9)[1:]
    from chemprune.molecules.models.schnet import cosine_cutoff

    want = blk.filters(model.rbf(d), cosine_cutoff(d, model.cutoff)).T
    torch.testing.assert_close(prof, want.detach())
    assert prof[:, -1].abs().max() < 1e-6  # zero at the cutoff


def test_attention_is_auxiliary_and_learns_through_the_gate(setup):
    model, ms = setup
    groups = schnet_groups(model, "filter")
    pruner = AttentionPruner(groups=groups, sparsity=0.5, profile_fn=schnet_filter_profiles(16))
    aux = pruner.attach(model)
    model_params = {id(p) for p in model.parameters()}
    assert aux and not any(id(p) in model_params for p in aux)
    b = ms.collate(list(range(32)))
    loss = (model(b.z, b.pos, b.batch) - b.y).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in aux if p.requires_grad)
    # the filter network gets no gradient from the attention (profiles are detached)
    att_only = AttentionPruner(groups=groups, sparsity=0.5, profile_fn=schnet_filter_profiles(16))
    m2 = SchNet.from_config(model.config())
    att_only.attach(m2)
    att_only.regularize(m2)
    assert all(p.grad is None for p in m2.parameters())


def test_gates_reach_sparsity_and_shrunk_equals_gated(setup):
    model, ms = setup
    groups = schnet_groups(model, "filter")
    pruner = AttentionPruner(
        groups=groups,
        sparsity=0.5,
        lam=0.05,
        scope="layer",
        profile_fn=schnet_filter_profiles(16),
        init=0.02,
    )
    aux = pruner.attach(model)
    w_opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    a_opt = torch.optim.Adam(aux, lr=1e-2)
    for step in range(60):
        b = ms.collate(list(range((step * 16) % 200, (step * 16) % 200 + 16)))
        w_opt.zero_grad()
        a_opt.zero_grad()
        (model(b.z, b.pos, b.batch) - b.y).pow(2).mean().backward()
        pruner.regularize(model)
        w_opt.step()
        a_opt.step()
    assert pruner.gate_sparsity() > 0.2  # the regulariser closes gates during training
    b = ms.collate(list(range(40)))
    pruner.apply(model, 0.5)  # rank by attention score: exactly half of each block's filters
    gated = model(b.z, b.pos, b.batch)
    shrink(model, groups)
    assert model.filter_channels == [6, 6]
    torch.testing.assert_close(model(b.z, b.pos, b.batch), gated, atol=1e-5, rtol=1e-5)


def test_bad_hidden():
    model = SchNet(hidden_channels=8, filter_channels=4, num_interactions=1, num_gaussians=6)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        AttentionPruner(groups=schnet_groups(model), sparsity=0.5, hidden=0)


def test_kernel_profiles_cover_hidden_units_from_original_weights(setup):
    model, ms = setup
    groups = schnet_groups(model, "kernel", blocks=[0])
    assert [g.name for g in groups] == ["interactions.0.filters", "interactions.0.filter_hidden"]
    fn = model.interactions[0].filter_network
    prof = schnet_filter_profiles(8)(model, groups[1])
    assert prof.shape == (fn.hidden_channels, 8)
    from chemprune.molecules.models.schnet import cosine_cutoff

    d = torch.linspace(0, model.cutoff, 9)[1:]
    want = fn.act(fn.lin1(model.rbf(d))) * cosine_cutoff(d, model.cutoff).unsqueeze(1)
    torch.testing.assert_close(prof, (want * fn.lin2.weight.norm(dim=0)).T.detach())
    # gating both halves of the kernel: each gate's profile ignores the other gates
    pruner = AttentionPruner(groups=groups, sparsity=0.5, profile_fn=schnet_filter_profiles(8))
    pruner.attach(model)
    torch.testing.assert_close(schnet_filter_profiles(8)(model, groups[1]), prof)
    b = ms.collate(list(range(16)))
    (model(b.z, b.pos, b.batch) - b.y).pow(2).mean().backward()  # no recursion between gates


def test_shrunk_and_tabulated_equals_gated_on_the_grid(setup):
    """What prune --filter-grid K --tabulate does: gates trained on a K-knot grid, applied, the
    model shrunk and tabulated on K knots gives the gated model's energies (filter channels
    closed by gates cost nothing and change nothing once the model runs on tables)."""
    model, ms = setup
    knots = 256
    groups = schnet_groups(model, "filter")
    pruner = AttentionPruner(
        groups=groups, sparsity=0.5, lam=0.05, scope="layer",
        profile_fn=schnet_filter_profiles(16), init=0.02,
    )  # fmt: skip
    aux = pruner.attach(model)
    model.filter_grid = knots
    opt = torch.optim.Adam([*model.parameters(), *aux], lr=1e-3)
    for step in range(20):
        b = ms.collate(list(range(step * 8, step * 8 + 8)))
        opt.zero_grad()
        (model(b.z, b.pos, b.batch) - b.y).pow(2).mean().backward()
        pruner.regularize(model)
        opt.step()
    b = ms.collate(list(range(40)))
    with torch.no_grad():
        before = model(b.z, b.pos, b.batch)
        pruner.apply(model, 0.5)
        gated = model(b.z, b.pos, b.batch)
    assert (gated - before).abs().max() > 1e-3  # the closed channels mattered
    model.filter_grid = 0
    shrink(model, groups)
    tab = model.tabulated(knots)
    assert tab.filter_channels == [6, 6] and set(tab.block_kinds) == {"tabulated"}
    with torch.no_grad():
        out = tab(b.z, b.pos, b.batch)
    torch.testing.assert_close(out, gated, atol=1e-5, rtol=0)
