import random

import pytest

from reaction_nmt.chem import (
    InvalidSmilesError,
    atom_map_numbers,
    canonical_molecules,
    canonicalize,
    canonicalize_or_none,
    randomize,
)
from reaction_nmt.synthetic import generate


def test_canonical_equivalents_and_stereo_kept():
    assert canonicalize("OCC") == canonicalize("C(O)C") == "CCO"
    assert canonicalize("C[C@@H](N)C(=O)O") != canonicalize("C[C@H](N)C(=O)O")
    assert "@" in canonicalize("C[C@@H](N)C(=O)O")
    assert "@" not in canonicalize("C[C@@H](N)C(=O)O", keep_stereo=False)
    assert canonicalize("F/C=C/F") != canonicalize("F/C=C\\F")


def test_atom_maps_removed_and_read():
    mapped = "[CH3:1][C:2](=[O:3])[OH:4]"
    assert canonicalize(mapped) == "CC(=O)O"
    assert atom_map_numbers(mapped) == {1, 2, 3, 4}


def test_molecule_order_does_not_matter():
    assert canonicalize("CCO.c1ccccc1") == canonicalize("c1ccccc1.OCC")
    assert canonical_molecules("OCC.C(=O)=O") == ["CCO", "O=C=O"]


@pytest.mark.parametrize("bad, named", [("C1CC", "C1CC"), ("CC.c1cc", "c1cc"), ("", "")])
def test_invalid_smiles_names_the_molecule(bad, named):
    with pytest.raises(InvalidSmilesError, match=f"invalid SMILES {named!r}"):
        canonicalize(bad)
    assert canonicalize_or_none(bad) is None


def test_randomize_gives_other_spellings_of_the_same_molecules():
    rng = random.Random(0)
    smiles = [r.reactants for r in generate()][::7] + ["C[C@@H](N)C(=O)O.F/C=C/Cl"]
    changed = 0
    for smi in smiles:
        spellings = {randomize(smi, rng=rng) for _ in range(5)}
        changed += len(spellings) > 1
        for s in spellings:
            assert canonicalize(s) == canonicalize(smi)
    assert changed >= 0.9 * len(smiles)
