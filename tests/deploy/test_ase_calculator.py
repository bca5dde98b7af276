"""Tests for chemprune.deploy.ase.SchNetCalculator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from chemprune.common.atomic import atomic_save
from chemprune.deploy.ase import SchNetCalculator
from chemprune.molecules.checkpoint import model_checkpoint
from chemprune.molecules.chem import StructureError
from chemprune.molecules.models.schnet import SchNet

U0 = {"name": "U0", "unit": "eV", "readout": "sum", "description": "x"}
GAP = {"name": "gap", "unit": "eV", "readout": "mean", "description": "HOMO-LUMO gap"}


def _model(seed: int = 0) -> SchNet:
    torch.manual_seed(seed)
    return SchNet(
        hidden_channels=16, filter_channels=16, num_interactions=2, num_gaussians=10, cutoff=5.0
    ).eval()


@pytest.fixture
def u0_path(tmp_path):
    return atomic_save(model_checkpoint(_model(), target=U0), tmp_path / "u0.pt")


def _fd_forces(atoms: Atoms, h: float = 1e-3) -> np.ndarray:
    ref = atoms.positions.copy()
    out = np.zeros_like(ref)
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1.0, -1.0):
                pos = ref.copy()
                pos[i, k] += sign * h
                atoms.positions = pos
                energies.append(atoms.get_potential_energy())
            out[i, k] = -(energies[0] - energies[1]) / (2 * h)
    atoms.positions = ref
    return out


def test_energy_matches_model_forward(u0_path):
    atoms = molecule("H2O")
    calc = SchNetCalculator(u0_path)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    z = torch.as_tensor(atoms.numbers, dtype=torch.long)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float32)
    with torch.no_grad():
        expected = float(_model()(z, pos))
    assert isinstance(energy, float)
    assert energy == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert calc.unit == "eV" and calc.target["name"] == "U0"


def test_forces_match_finite_differences_float32(u0_path):
    atoms = molecule("CH4")
    atoms.rattle(0.05, seed=1)
    atoms.calc = SchNetCalculator(u0_path)
    forces = atoms.get_forces()
    assert forces.dtype == np.float64 and forces.shape == (5, 3)
    fd = _fd_forces(atoms)
    scale = max(float(np.abs(fd).max()), 1e-3)
    np.testing.assert_allclose(forces, fd, atol=1e-2 * scale)


def test_forces_exact_with_float64_model():
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=2)
    atoms.calc = SchNetCalculator(_model().double(), target=U0)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, _fd_forces(atoms, h=1e-5), rtol=1e-5, atol=1e-7)


def test_forces_sum_to_zero(u0_path):
    atoms = molecule("CH4")
    atoms.rattle(0.1, seed=3)
    atoms.calc = SchNetCalculator(u0_path)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-4)


def test_non_energy_model_is_refused(tmp_path):
    path = atomic_save(model_checkpoint(_model(), target=GAP), tmp_path / "gap.pt")
    with pytest.raises(ValueError, match="'gap'.*not an energy"):
        SchNetCalculator(path)
    with pytest.raises(ValueError, match="not an energy"):
        SchNetCalculator(_model(), target=GAP)
    atoms = molecule("H2O")
    atoms.calc = SchNetCalculator(path, allow_non_energy=True)
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (3, 3)


def test_unsupported_element_raises(u0_path):
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.4, 0, 0]])
    atoms.calc = SchNetCalculator(u0_path)
    with pytest.raises(StructureError, match=r"element\(s\) Cl, Na not supported"):
        atoms.get_potential_energy()


def test_periodic_atoms_and_bad_model_type(u0_path):
    atoms = molecule("H2O", vacuum=3.0, pbc=True)
    atoms.calc = SchNetCalculator(u0_path)
    with pytest.raises(ValueError, match="periodic"):
        atoms.get_potential_energy()
    with pytest.raises(TypeError):
        SchNetCalculator(42)


def test_single_atom_has_zero_forces(u0_path):
    atoms = Atoms("C", positions=[[0.1, 0.2, 0.3]])
    atoms.calc = SchNetCalculator(u0_path)
    assert np.isfinite(atoms.get_potential_energy())
    np.testing.assert_array_equal(atoms.get_forces(), np.zeros((1, 3)))


def test_colliding_atoms_and_non_finite_energy_raise(u0_path):
    atoms = Atoms("CH", positions=[[0, 0, 0], [0, 0, 0.01]])
    atoms.calc = SchNetCalculator(u0_path)
    with pytest.raises(StructureError, match=r"atoms 1 \(C\) and 2 \(H\) are 0\.010 A apart"):
        atoms.get_potential_energy()
    far = Atoms("CH", positions=[[0, 0, 0], [0, 0, 1e39]])
    far.calc = SchNetCalculator(u0_path)
    with pytest.raises(StructureError, match="beyond"):
        far.get_potential_energy()
    model = SchNet(hidden_channels=8, filter_channels=8, num_interactions=1, num_gaussians=8)
    with torch.no_grad():
        model.embedding.weight.fill_(float("nan"))
    ch4 = molecule("CH4")
    ch4.calc = SchNetCalculator(model)
    with pytest.raises(FloatingPointError, match="non-finite energy"):
        ch4.get_potential_energy()


@pytest.mark.parametrize("runtime", ["eager", "torchscript"])
def test_a_tabulated_model_gives_the_exact_energy_and_continuous_forces(tmp_path, runtime):
    exact = _model()
    path = atomic_save(model_checkpoint(exact.tabulated(256), target=U0), tmp_path / "tab.pt")
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=3)
    atoms.calc = SchNetCalculator(exact, target=U0)
    e_exact, f_exact = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SchNetCalculator(path, runtime=runtime)
    assert atoms.get_potential_energy() == pytest.approx(e_exact, abs=1e-4)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, f_exact, atol=1e-3)
    # forces by autograd through the interpolation are the energy's gradient
    fd = _fd_forces(atoms)
    np.testing.assert_allclose(forces, fd, atol=1e-2 * max(float(np.abs(fd).max()), 1e-3))
