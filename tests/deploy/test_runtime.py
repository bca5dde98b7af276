"""Inference runtimes (chemprune.deploy.runtime): the frozen TorchScript graph equals eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule

from chemprune.deploy.ase import SchNetCalculator
from chemprune.deploy.runtime import compile_for_inference, with_runtime
from chemprune.engines.prune import MagnitudePruner, shrink
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import schnet_groups


@pytest.fixture
def pruned_model(qm9_small):
    torch.manual_seed(0)
    m = SchNet(hidden_channels=16, filter_channels=12, num_interactions=2, num_gaussians=10)
    groups = schnet_groups(m, "kernel")
    MagnitudePruner(groups=groups, sparsity=0.5, scope="layer").apply(m)
    shrink(m, groups)
    return m.eval()


def _assert_equal_to_eager(model, fast, ms, batches) -> None:
    for idx in batches:
        b = ms.collate(idx)
        pos_a = b.pos.clone().requires_grad_(True)
        pos_b = b.pos.clone().requires_grad_(True)
        ya = model(b.z, pos_a, b.batch, num_molecules=b.num_molecules)
        yb = fast(b.z, pos_b, b.batch, num_molecules=b.num_molecules)
        torch.testing.assert_close(yb, ya, atol=1e-5, rtol=1e-5)
        (fa,) = torch.autograd.grad(ya.sum(), pos_a)
        (fb,) = torch.autograd.grad(yb.sum(), pos_b)
        torch.testing.assert_close(fb, fa, atol=1e-5, rtol=1e-5)


def test_torchscript_runtime_equals_eager_on_real_molecules_and_forces(qm9_small, pruned_model):
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    fast = compile_for_inference(pruned_model)
    assert pruned_model.training is False and isinstance(fast, torch.jit.ScriptModule)
    _assert_equal_to_eager(pruned_model, fast, ms, ([0], list(range(64)), list(range(100, 240))))


def test_export_runtime_equals_eager_on_real_molecules_and_forces(qm9_small, pruned_model):
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    fast = with_runtime(pruned_model, "export")
    _assert_equal_to_eager(pruned_model, fast, ms, ([0], list(range(64))))
    with pytest.raises(ValueError, match="atomic numbers must be in"):
        fast(torch.tensor([0, 6]), torch.zeros(2, 3))


def test_dense_radius_pairs_equal_the_padded_ones():
    from chemprune.molecules.models.graph import dense_radius_pairs, radius_pairs

    g = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 3, generator=g) * 3
    batch = torch.repeat_interleave(torch.arange(5), torch.tensor([10, 5, 30, 1, 14]))
    assert torch.equal(dense_radius_pairs(pos, batch, 5.0), radius_pairs(pos, batch, 5.0))


def test_ase_calculator_runtimes_agree(pruned_model):
    results = {}
    for runtime in ("eager", "torchscript", "export"):
        atoms = molecule("CH3CH2OH")
        atoms.calc = SchNetCalculator(pruned_model, runtime=runtime)
        results[runtime] = (atoms.get_potential_energy(), atoms.get_forces())
    for runtime in ("torchscript", "export"):
        assert results[runtime][0] == pytest.approx(results["eager"][0], abs=1e-5)
        np.testing.assert_allclose(results[runtime][1], results["eager"][1], atol=1e-5)
    with pytest.raises(ValueError, match="unknown runtime 'onnx'"):
        with_runtime(pruned_model, "onnx")


@pytest.mark.slow  # Inductor compiles for ~30 s
def test_compiled_runtime_of_a_tabulated_model_equals_eager(pruned_model, qm9_small):
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    tab = pruned_model.tabulated(256).eval()
    fast = with_runtime(tab, "compiled")
    _assert_equal_to_eager(tab, fast, ms, [np.arange(40), np.arange(40, 47), np.array([3])])
    with pytest.raises(ValueError, match="atomic numbers"):
        fast(torch.tensor([0, 6]), torch.zeros(2, 3))
