"""Tabulated filters: the interpolation, the model built from a trained one, its file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from chemprune.common.atomic import CheckpointError, atomic_save
from chemprune.molecules.checkpoint import load_model, model_checkpoint
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.models.tabulated import TabulatedFilter, hermite_table, interpolate

REPO = Path(__file__).resolve().parents[3]
RELEASED = REPO / "models" / "schnet_gap_small.pt"


def _cubic(d):
    return torch.stack((d**3 - 2.0 * d, 0.5 * d * d + 1.0, torch.sin(d)), dim=-1)


def test_hermite_pieces_reproduce_cubics_and_converge_as_h4():
    d = torch.linspace(0.0, 4.99, 997, dtype=torch.float64)
    for knots in (2, 7):  # a cubic is represented exactly by any table
        t = hermite_table(_cubic, cutoff=5.0, knots=knots)
        got = interpolate(t, d, (knots - 1) / 5.0)
        assert torch.allclose(got[:, :2], _cubic(d)[:, :2], atol=1e-10)
    errs = []
    for knots in (17, 33, 65):
        t = hermite_table(_cubic, cutoff=5.0, knots=knots)
        errs.append(float((interpolate(t, d, (knots - 1) / 5.0)[:, 2] - torch.sin(d)).abs().max()))
    assert errs[0] / errs[1] > 10 and errs[1] / errs[2] > 10  # h^4: 16x per halving


def test_interpolant_has_a_continuous_derivative_at_the_knots():
    knots, cutoff = 9, 5.0
    t = hermite_table(lambda d: torch.exp(-d).unsqueeze(-1), cutoff=cutoff, knots=knots)
    h = cutoff / (knots - 1)
    for k in range(1, knots - 1):
        d = torch.tensor([k * h - 1e-7, k * h + 1e-7], dtype=torch.float64, requires_grad=True)
        y = interpolate(t, d, 1 / h)
        (g,) = torch.autograd.grad(y.sum(), d)
        assert abs(float(g[0] - g[1])) < 1e-5
        assert abs(float(g[0]) + math.exp(-k * h)) < 1e-3  # the derivative of exp(-d)


@pytest.fixture(scope="module")
def released():
    if not RELEASED.exists():
        pytest.skip("released model not in this checkout")
    return load_model(RELEASED)[0]


@pytest.fixture(scope="module")
def molecules(qm9_small):
    return MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))


def test_tabulated_equals_exact_on_real_molecules_energies_and_forces(released, molecules):
    tab = released.tabulated(512)
    assert tab.block_kinds == ["tabulated"] * 4 and tab.table_knots == [512] * 4
    assert "knots=512" in repr(tab.interactions[0]) and "table_knots" in repr(tab)
    assert not any("filter_network.lin" in k for k in tab.state_dict())
    b = molecules.collate(np.arange(len(molecules)))
    pa = b.pos.clone().requires_grad_(True)
    pb = b.pos.clone().requires_grad_(True)
    ya = released(b.z, pa, b.batch, num_molecules=b.num_molecules)
    yb = tab(b.z, pb, b.batch, num_molecules=b.num_molecules)
    (fa,) = torch.autograd.grad(ya.sum(), pa)
    (fb,) = torch.autograd.grad(yb.sum(), pb)
    ya, yb = ya.detach(), yb.detach()
    assert float((ya - yb).abs().max()) < 2e-5  # eV, 240 real QM9 molecules
    assert float((fa - fb).abs().max()) < 2e-3  # eV/A
    with torch.no_grad():
        coarse = released.tabulated(32)(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
    assert float((coarse - ya).abs().max()) > 10 * float((ya - yb).abs().max())


def test_tabulated_keeps_atomwise_blocks_and_refuses_retabulation():
    m = SchNet(hidden_channels=8, filter_channels=4, num_interactions=3, num_gaussians=6,
               block_kinds=["cfconv", "atomwise", "linear_filter"])  # fmt: skip
    tab = m.tabulated([64, 64, 32])
    assert tab.block_kinds == ["tabulated", "atomwise", "tabulated"]
    assert tab.table_knots == [64, 0, 32]
    assert not tab.needs_basis
    z = torch.tensor([6, 1, 1, 8])
    pos = torch.randn(4, 3)
    assert torch.allclose(tab(z, pos), m(z, pos), atol=1e-3)
    assert torch.equal(tab.tabulated([64, 64, 32])(z, pos), tab(z, pos))
    with pytest.raises(ValueError, match="already tabulated on 64 knots"):
        tab.tabulated(32)
    with pytest.raises(ValueError, match="at least 2 knots"):
        m.tabulated(1)
    with pytest.raises(ValueError, match="at least 2 knots"):
        TabulatedFilter(knots=1, filter_channels=2, cutoff=5.0)
    from chemprune.engines.prune import MagnitudePruner
    from chemprune.molecules.schnet.prune_groups import schnet_groups

    MagnitudePruner(
        groups=schnet_groups(m, "filter", blocks=[0]), sparsity=0.5, scope="layer"
    ).apply(m)
    with pytest.raises(ValueError, match="pruning masks or gates"):
        m.tabulated(64)


def test_checkpoint_round_trip_and_a_corrupted_table_is_refused(released, tmp_path):
    tab = released.tabulated(128)
    ckpt = model_checkpoint(tab, target={"name": "gap", "unit": "eV"})
    path = atomic_save(ckpt, tmp_path / "tab.pt")
    again, loaded = load_model(path)
    assert loaded["config"]["table_knots"] == [128] * 4
    z, pos = torch.tensor([6, 8, 1, 1, 1, 1]), torch.randn(6, 3)
    assert torch.equal(again(z, pos), tab(z, pos))
    ckpt["state_dict"]["interactions.2.filter_network.coeffs"][17, 1, 3] += 1e-3
    atomic_save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_model(tmp_path / "bad.pt")


def test_export_and_torchscript_of_a_tabulated_model_equal_eager(released):
    from chemprune.deploy.export import check_against
    from chemprune.deploy.runtime import compile_for_inference, export_program

    tab = released.tabulated(256).eval()
    check_against(tab, compile_for_inference(tab), "TorchScript")
    check_against(tab, export_program(tab).module(), "export")


def test_grid_training_gradient_equals_the_exact_gradient(molecules):
    torch.manual_seed(0)
    m = SchNet(hidden_channels=16, filter_channels=16, num_interactions=2, num_gaussians=16)
    b = molecules.collate(np.arange(32))

    def grads(grid: int) -> torch.Tensor:
        m.zero_grad()
        m.filter_grid = grid
        loss = (m(b.z, b.pos, b.batch, num_molecules=b.num_molecules) - b.y).abs().mean()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in m.parameters() if p.grad is not None])

    exact, grid = grads(0), grads(256)
    assert exact.numel() == grid.numel()
    assert float((exact - grid).norm() / exact.norm()) < 1e-3
    assert float((exact - grads(4)).norm() / exact.norm()) > 1e-3  # the test can fail
    m.filter_grid = 0


def test_a_supernet_searches_on_a_grid(molecules):
    from chemprune.molecules.schnet.nas import SchNetSupernet

    torch.manual_seed(0)
    net = SchNetSupernet(candidates=["cf8", "linear8", "atomwise", "skip"], hidden_channels=8,
                         num_interactions=2, num_gaussians=8)  # fmt: skip
    b = molecules.collate(np.arange(16))

    def grads(grid: int) -> torch.Tensor:
        net.zero_grad()
        net.filter_grid = grid
        net(b.z, b.pos, b.batch, num_molecules=b.num_molecules).sum().backward()
        return torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])

    exact, grid = grads(0), grads(128)
    assert float((exact - grid).norm() / exact.norm()) < 1e-3
    blocks = [m for m in net.modules() if getattr(m, "kind", None) in ("cfconv", "linear_filter")]
    assert len(blocks) == 4 and all(m.grid is not None and m.grid.knots == 128 for m in blocks)
    net.filter_grid = 0
    assert all(m.grid is None for m in blocks)
    with pytest.raises(ValueError, match="knot count >= 2"):
        net.filter_grid = 1


def test_a_low_rank_model_tabulates_and_keeps_its_atomwise_factors(molecules):
    from chemprune.engines.prune.lowrank_layers import apply_low_rank

    torch.manual_seed(0)
    m = SchNet(hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=8)
    apply_low_rank(m, {"interactions.0.filter_network.lin1": 4, "interactions.1.out": 4})
    tab = m.tabulated(256)
    assert tab.config()["low_rank"] == {"interactions.1.out": 4}
    b = molecules.collate(np.arange(20))
    with torch.no_grad():
        ya = m(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
        yb = tab(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
    assert float((ya - yb).abs().max()) < 1e-4
    again = SchNet.from_config(tab.config())
    again.load_state_dict(tab.state_dict())
