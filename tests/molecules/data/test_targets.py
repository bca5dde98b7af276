"""Target statistics for SchNet's standardisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.targets import get_target, target_statistics


def three_molecules() -> MoleculeSet:
    z = np.array([6, 1, 1, 8, 1, 6])  # CH2 | OH | C
    pos = np.zeros((6, 3), dtype=np.float32)
    return MoleculeSet(z, pos, np.array([0, 3, 5, 6]), np.array([10.0, 7.0, 3.0]))


def test_sum_readout_standardises_per_atom_after_atom_references():
    data, ref = three_molecules(), [0.0] * 10
    ref[1], ref[6], ref[8] = 1.0, 2.0, 4.0
    mean, std = target_statistics(data, np.array([0, 1]), get_target("U0"), ref)
    per_atom = torch.tensor([(10.0 - 4.0) / 3, (7.0 - 5.0) / 2], dtype=torch.float64)
    assert mean == pytest.approx(float(per_atom.mean()))
    assert std == pytest.approx(float(per_atom.std()))
    plain = target_statistics(data, np.array([0, 1]), get_target("U0"), None)
    assert plain[0] == pytest.approx((10 / 3 + 7 / 2) / 2)  # without references


def test_mean_readout_uses_the_values_and_a_single_molecule_gets_unit_std():
    data = three_molecules()
    assert get_target("gap").readout == "mean"
    mean, std = target_statistics(data, np.array([0, 1, 2]), get_target("gap"), None)
    assert mean == pytest.approx(20 / 3) and std == pytest.approx(float(np.std([10, 7, 3], ddof=1)))
    assert target_statistics(data, np.array([2]), get_target("gap"), None) == (3.0, 1.0)
