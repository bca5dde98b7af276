"""The fixed-size graph encoding of molecules (MolGAN's) round-trips QM9 and refuses the rest."""

from __future__ import annotations

import numpy as np
import pytest

from chemprune.molecules.chem.molgraph import (
    ATOM_TYPES,
    GraphEncodingError,
    canonical,
    decode,
    encode,
    encode_many,
)


def test_qm9_molecules_round_trip_exactly(qm9_rows):
    kept = 0
    for smiles in qm9_rows["SMILES"]:
        try:
            atoms, bonds = encode(smiles)
        except GraphEncodingError as err:
            assert "charged" in str(err)  # QM9's only misfits are its zwitterions
            continue
        kept += 1
        assert decode(atoms, bonds) == canonical(smiles)
    assert kept >= 230


def test_encoding_layout():
    atoms, bonds = encode("C#N")  # hydrogen cyanide: a triple bond
    assert atoms.tolist()[:3] == [ATOM_TYPES.index("C"), ATOM_TYPES.index("N"), 0]
    assert bonds[0, 1] == bonds[1, 0] == 3 and bonds.sum() == 6
    assert (np.diag(bonds) == 0).all()
    atoms, bonds = encode("c1ccccc1")  # kekulised: three single and three double bonds
    upper = bonds[np.triu_indices(9, 1)]
    assert sorted(upper[upper > 0].tolist()) == [1, 1, 1, 2, 2, 2]
    assert decode(atoms, bonds) == "c1ccccc1"


@pytest.mark.parametrize(
    ("smiles", "match"),
    [
        ("CCCCCCCCCC", "10 heavy atoms"),
        ("CCCl", "contains Cl"),
        ("C[NH3+]", "charged"),
        ("C1CC", "not a valid molecule"),
        ("", "no heavy atom"),
    ],
)
def test_what_the_encoding_cannot_hold_is_refused(smiles, match):
    with pytest.raises(GraphEncodingError, match=match):
        encode(smiles)


def test_invalid_graphs_decode_to_none():
    atoms = np.zeros(9, dtype=np.int64)
    bonds = np.zeros((9, 9), dtype=np.int64)
    assert decode(atoms, bonds) is None  # no atom
    atoms[:2] = ATOM_TYPES.index("F")
    bonds[0, 1] = bonds[1, 0] = 2  # F=F breaks fluorine's valence
    assert decode(atoms, bonds) is None
    bonds[:] = 0
    assert decode(atoms, bonds) is None  # two fluorine atoms, no bond: disconnected
    bonds[0, 1] = bonds[1, 0] = 1
    assert decode(atoms, bonds) == "FF"
    bonds[0, 2] = bonds[2, 0] = 1  # a bond to a padding slot is ignored
    assert decode(atoms, bonds) == "FF"


def test_encode_many_counts_what_it_skips():
    atoms, bonds, kept, skipped = encode_many(["CCO", "C[NH3+]", "CCCl", "bad(", "CC=O"])
    assert kept == [0, 4] and atoms.shape == (2, 9) and bonds.shape == (2, 9, 9)
    assert skipped == {"charged": 1, "element": 1, "invalid": 1}
