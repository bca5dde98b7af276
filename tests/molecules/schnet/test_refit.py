"""Least-squares refit of pruned blocks' linear layers to the parent's outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from chemprune.engines.prune import PRUNERS
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import schnet_groups, shrink_schnet
from chemprune.molecules.schnet.refit import refit_blocks


@pytest.fixture
def parent_and_batches(qm9_small):
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, filter_channels=12, num_interactions=3, num_gaussians=10)
    with torch.no_grad():  # a parent whose blocks matter: larger updates than the init gives
        for blk in model.interactions:
            blk.out.weight.mul_(4.0)
    data = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    batches = []
    for start in range(0, 48, 16):
        b = data.collate(list(range(start, start + 16)))
        batches.append((b.z, b.pos, b.batch))
    return model.eval(), batches


def _predict(model, batches):
    with torch.no_grad():
        return torch.cat([model(z, pos, batch) for z, pos, batch in batches])


def test_refit_restores_a_perturbed_layer_exactly(parent_and_batches):
    parent, batches = parent_and_batches
    student = copy.deepcopy(parent)
    with torch.no_grad():
        student.interactions[1].f2out.weight.add_(
            0.3 * torch.randn_like(student.interactions[1].f2out.weight)
        )
    assert not torch.allclose(_predict(student, batches), _predict(parent, batches), atol=1e-4)
    report = refit_blocks(student, parent, batches, layers=("f2out", "out"), ridge=1e-10)
    assert report["layers"][2] == "interactions.1.f2out"
    assert report["residual_before"][2] > 0.05
    assert max(report["residual_after"]) < 1e-4
    torch.testing.assert_close(
        _predict(student, batches), _predict(parent, batches), atol=1e-4, rtol=0
    )


def test_refit_after_removing_channels_brings_the_outputs_back_towards_the_parent(
    parent_and_batches,
):
    parent, batches = parent_and_batches
    student = copy.deepcopy(parent)
    groups = schnet_groups(student, "filter")
    PRUNERS.get("magnitude")(groups=groups, sparsity=0.5, scope="layer").apply(student)
    target = _predict(parent, batches)
    err_removed = (_predict(student, batches) - target).abs().mean()
    report = refit_blocks(student, parent, batches, layers=("f2out", "out"))
    err_refit = (_predict(student, batches) - target).abs().mean()
    assert all(
        a < b for a, b in zip(report["residual_after"], report["residual_before"], strict=True)
    )
    assert err_refit < 0.5 * err_removed
    # the refit gives no weight to a removed channel, so removing them for real changes nothing
    for blk in student.interactions:
        lin2 = blk.filter_network.lin2
        dead = (lin2.weight.abs().sum(1) == 0) & (lin2.bias == 0)
        assert int(dead.sum()) == 6
        assert torch.all(blk.f2out.weight[:, dead] == 0)
    masked = _predict(student, batches)
    shrink_schnet(student, groups)
    assert student.filter_channels == [6, 6, 6]
    torch.testing.assert_close(_predict(student, batches), masked, atol=1e-5, rtol=0)


def test_refit_refuses_what_it_cannot_do(parent_and_batches):
    parent, batches = parent_and_batches
    student = copy.deepcopy(parent)
    with pytest.raises(ValueError, match="at least one batch"):
        refit_blocks(student, parent, [])
    with pytest.raises(ValueError, match="layers must be among"):
        refit_blocks(student, parent, batches, layers=("in2f",))
    other = SchNet(hidden_channels=16, filter_channels=12, num_interactions=2, num_gaussians=10)
    with pytest.raises(ValueError, match="student has 3 blocks, teacher 2"):
        refit_blocks(student, other, batches)
