"""Structured sparsity learning: the group lasso, its proximal step, learned widths and depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.prune import SSLPruner, channel_groups, shrink, weight_groups
from chemprune.engines.prune.ssl import group_lasso, unit_norms
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import remove_blocks, schnet_groups, shrink_schnet
from tests.engines.prune.conftest import tiny_mlp


def test_group_lasso_subgradient_equals_hand_computation():
    torch.manual_seed(0)
    model = tiny_mlp()
    x = torch.randn(7, 10)
    groups = channel_groups(model, x)
    pruner = SSLPruner(groups=groups, sparsity=0.0, strength=0.3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    pruner.regularize(model)
    # the first group: rows of layer 0 (weight and bias) and columns of layer 2
    w0, b0, w2 = model[0].weight, model[0].bias, model[2].weight
    g = next(g for g in groups if g.mask_slots[0].module == "0")
    has_cols = any(s.module == "2" and s.dim == 1 for s in g.mask_slots)
    for k in range(16):
        sq = w0[k].pow(2).sum() + b0[k].pow(2) + (w2[:, k].pow(2).sum() if has_cols else 0)
        norm = sq.sqrt()
        torch.testing.assert_close(model[0].weight.grad[k], 0.3 * w0[k] / norm)
        torch.testing.assert_close(model[0].bias.grad[k], 0.3 * b0[k] / norm)
    # and equals the gradient of the penalty itself
    for p in model.parameters():
        p.grad = None
    (0.3 * group_lasso(model, groups)).backward()
    autograd = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for n, p in model.named_parameters()}  # fmt: skip
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    pruner.regularize(model)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, autograd[n], msg=n)


def test_proximal_step_zeroes_small_units_and_shrinks_the_others():
    layer = nn.Sequential(nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        layer[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.03, 0.04], [0.0, 0.0]]))
    from chemprune.engines.prune.groups import PruningGroup, Slot

    g = PruningGroup(name="rows", kind="channel", size=3, mask_slots=(Slot("0", "weight", 0),))
    pruner = SSLPruner(groups=[g], sparsity=0.0, strength=1.0)
    pruner.proximal(layer, lr=0.1)  # every row loses 0.1 in norm
    w = layer[0].weight
    torch.testing.assert_close(w[0], torch.tensor([3.0, 4.0]) * (4.9 / 5.0))
    assert bool((w[1] == 0).all()) and bool((w[2] == 0).all())  # 0.05 < 0.1: exactly zero
    assert pruner.learned_sparsity(layer, 1e-8) == {"rows": pytest.approx(2 / 3)}


def test_unstructured_groups_are_weights_and_penalty_is_l1():
    torch.manual_seed(0)
    model = tiny_mlp()
    groups = weight_groups(model)
    l1 = sum(model[i].weight.abs().sum() for i in (0, 2, 4))
    torch.testing.assert_close(group_lasso(model, groups), l1)
    assert unit_norms(model, groups)["0"].shape == model[0].weight.shape


def _fit(model, pruner, x, y, steps, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        pruner.proximal(model, lr)


def test_ssl_learns_the_width_a_task_needs_and_shrink_keeps_the_function():
    """Targets that depend on two inputs through two hidden directions: SSL with the proximal
    step zeroes most hidden units exactly; masking them (threshold) and shrinking changes no
    output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    x = torch.randn(256, 6)
    y = torch.tanh(x[:, :1] - x[:, 1:2]) + 0.5 * torch.tanh(x[:, 1:2])
    groups = channel_groups(model, x[:4])
    pruner = SSLPruner(groups=groups, sparsity=0.0, strength=0.02)
    _fit(model, pruner, x, y, steps=600)
    learned = pruner.learned_sparsity(model, 0.0)
    assert learned[groups[0].name] >= 0.5  # at least half the hidden units are exactly zero
    loss = nn.functional.mse_loss(model(x), y).item()
    assert loss < 0.2 * y.var().item()  # and the fit is still useful
    pruner.threshold(model, 0.0)
    before = model(x)
    shrink(model, groups)
    assert model[0].out_features <= 8
    torch.testing.assert_close(model(x), before, atol=1e-6, rtol=1e-6)


@pytest.fixture
def schnet_and_batch(qm9_small):
    torch.manual_seed(0)
    m = SchNet(hidden_channels=16, filter_channels=12, num_interactions=3, num_gaussians=10).eval()
    b = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr).collate(list(range(20)))
    return m, b


def test_depth_a_block_driven_to_zero_is_removed_and_the_model_rebuilds(schnet_and_batch, tmp_path):
    from chemprune.common.atomic import atomic_save
    from chemprune.molecules.checkpoint import load_model, model_checkpoint

    m, b = schnet_and_batch
    groups = schnet_groups(m, "depth")
    assert [g.kind for g in groups] == ["block"] * 3 and all(g.size == 1 for g in groups)
    pruner = SSLPruner(groups=groups, sparsity=0.0, strength=1.0)
    # a large proximal step on block 1 alone (its group norm is below lr * strength)
    norms = unit_norms(m, groups)
    only = SSLPruner(groups=[groups[1]], sparsity=0.0, strength=1.0)
    only.proximal(m, lr=float(norms[groups[1].name].detach()) * 1.01)
    assert pruner.learned_sparsity(m, 0.0) == {g.name: float(i == 1) for i, g in enumerate(groups)}
    pruner.threshold(m, 0.0)
    masked = m(b.z, b.pos, b.batch)
    assert shrink_schnet(m, groups) == {"blocks_removed": [1], "widths": {}}
    assert len(m.interactions) == 2 and m.config()["num_interactions"] == 2
    torch.testing.assert_close(m(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    path = tmp_path / "m.pt"
    atomic_save(model_checkpoint(m, target={"name": "gap", "unit": "eV"}), path)
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded.eval()(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="keep at least one"):
        for blk in m.interactions:
            nn.init.zeros_(blk.out.weight), nn.init.zeros_(blk.out.bias)
        remove_blocks(m)


def test_depth_combines_with_widths_and_contract_kinds(schnet_and_batch):
    m, _ = schnet_and_batch
    groups = schnet_groups(m, "kernel+depth")
    kinds = sorted({g.kind for g in groups})
    assert kinds == ["block", "channel"] and len(groups) == 9
    with pytest.raises(ValueError, match="strength must be"):
        SSLPruner(groups=groups, sparsity=0.0, strength=-1)


def test_depth_and_widths_shrink_together_and_renumber(schnet_and_batch):
    """Block 0 removed, the kernels of the others halved, the atom basis kept whole: the
    remaining groups are renumbered past the removed block, and the function is unchanged."""
    m, b = schnet_and_batch
    groups = schnet_groups(m, "kernel+atom_basis+depth")
    pruner = SSLPruner(groups=groups, sparsity=0.0, strength=1e-3)
    keep = {g: torch.ones(g.size, dtype=torch.bool) for g in groups}
    for g in groups:
        if g.name == "interactions.0.depth":
            keep[g] = torch.tensor([False])
        elif g.name.endswith("filters") or g.name.endswith("filter_hidden"):
            keep[g] = torch.arange(g.size) % 2 == 0
    from chemprune.engines.prune.masks import apply_masks, group_masks

    apply_masks(m, group_masks(m, keep))
    masked = m(b.z, b.pos, b.batch)
    report = shrink_schnet(m, groups)
    assert report["blocks_removed"] == [0]
    assert m.config()["num_interactions"] == 2 and m.config()["filter_channels"] == [6, 6]
    assert report["widths"]["interactions.0.filters"] == (12, 6)  # old block 1, renumbered
    torch.testing.assert_close(m(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    assert pruner.apply  # the engine exists for these groups


def test_ssl_apply_removes_the_weakest_blocks_and_keeps_one(schnet_and_batch):
    m, _ = schnet_and_batch
    groups = schnet_groups(m, "depth")
    with torch.no_grad():
        m.interactions[2].out.weight.mul_(1e-3)
        for p in m.interactions[2].parameters():
            p.mul_(1e-3)
    pruner = SSLPruner(groups=groups, sparsity=0.3, strength=0.0)  # round(0.9) = 1 block
    pruner.apply(m)
    from chemprune.engines.prune.masks import alive_units

    alive = [bool(alive_units(m, g).any()) for g in groups]
    assert alive == [True, True, False]
    SSLPruner(groups=groups, sparsity=0.99, strength=0.0).apply(m)
    assert sum(bool(alive_units(m, g).any()) for g in groups) == 1
