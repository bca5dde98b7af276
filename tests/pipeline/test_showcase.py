"""The demo's computation: QM9 look-up by SMILES, and models that cannot be compared refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from chemprune.pipeline.showcase import qm9_matches


def test_qm9_matches_by_canonical_smiles_and_atom_count():
    # three molecules written as QM9 writes them (GDB strings); atoms with hydrogens: 9, 10, 12
    data = SimpleNamespace(smiles=np.array(["OCC", "CC(=O)C", "C1=CC=CC=C1"]),
                           ptr=np.array([0, 9, 19, 31]))  # fmt: skip
    assert qm9_matches(data, ["CCO", "c1ccccc1", "CC(C)=O", "CCN"]) == [0, 2, 1, None]
    with pytest.raises(ValueError, match="invalid SMILES 'C1C'"):
        qm9_matches(data, ["C1C"])
