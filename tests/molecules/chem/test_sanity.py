"""Input sanity: SMILES alphabet and size, geometry checks, fragments placed apart."""

from __future__ import annotations

import numpy as np
import pytest

from chemprune.molecules.chem.sanity import (
    Limits,
    StructureError,
    check_geometry,
    check_smiles_text,
    closest_pair,
)
from chemprune.molecules.chem.structures import read_structure_file, smiles_to_structure


def test_closest_pair_matches_brute_force():
    rng = np.random.default_rng(1)
    for n in (2, 3, 17, 600):
        pos = rng.normal(size=(n, 3)) * 4
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        d[np.tril_indices(n)] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        assert closest_pair(pos) == (i, j, pytest.approx(d[i, j]))
    assert closest_pair(np.zeros((1, 3)))[2] == np.inf


@pytest.mark.parametrize(
    ("smiles", "message"),
    [
        ("C\u0421O", r"character 'С' \(U\+0421\) at position 2 is not a SMILES character"),
        ("CC O", "contains whitespace"),
        ("CCO\u200b", r"U\+200B"),
        ("   ", "empty string"),
        ("C" * 1001, "1,001 characters, more than the limit of 1,000"),
    ],
)
def test_smiles_text_refused_before_rdkit(smiles, message):
    with pytest.raises(StructureError, match=message):
        check_smiles_text(smiles)
    with pytest.raises(StructureError, match=message):
        smiles_to_structure(smiles)


def test_smiles_alphabet_accepts_the_grammar():
    for smi in (
        "C[C@@H](O)C(=O)[O-]",
        "c1ccccc1/C=C\\C",
        "[NH4+].[O-]C#N",
        "C%10CCCCC%10",
        "[13CH4]",
    ):
        assert check_smiles_text(f"  {smi} ") == smi


def test_multi_fragment_smiles_placed_apart_or_refused():
    s = smiles_to_structure("C.C")
    assert s.fragments == 2 and len(s.z) == 10
    # the fragments are beyond a 5 A cutoff; each one is an intact methane
    carbons = np.flatnonzero(s.z == 6)
    assert np.linalg.norm(s.pos[carbons[0]] - s.pos[carbons[1]]) > 10
    _, _, closest = closest_pair(s.pos)
    assert 0.9 < closest < 1.2  # a C-H bond, not two atoms on top of each other
    for c in carbons:  # four C-H bonds of ~1.09 A, and nothing else within 10 A
        d = np.sort(np.linalg.norm(s.pos - s.pos[c], axis=1))[1:]
        assert np.allclose(d[:4], 1.09, atol=0.02) and d[4] > 10
    with pytest.raises(StructureError, match="2 disconnected fragments"):
        smiles_to_structure("C.C", fragments="refuse")
    assert smiles_to_structure("CCO", fragments="refuse").fragments == 1


def test_smiles_too_many_atoms_refused_before_embedding():
    with pytest.raises(
        StructureError, match="302 atoms with hydrogens, more than the limit of 300"
    ):
        smiles_to_structure("C" * 100, limits=Limits(max_smiles_atoms=300, max_atoms=10))
    with pytest.raises(StructureError, match="more than the limit of 20"):
        smiles_to_structure("CCCCCCC", limits=Limits(max_smiles_atoms=20))


@pytest.mark.parametrize(
    ("xyz", "message"),
    [
        ("2\n\nC 0 0 0\nC 0 0 0\n", r"atoms 1 \(C\) and 2 \(C\) are 0\.000 A apart"),
        ("2\n\nC 0 0 0\nO 0 0 1e-6\n", r"atoms 1 \(C\) and 2 \(O\) are 0\.000 A apart"),
        ("2\n\nC 0 0 0\nO 0 0 1e39\n", r"coordinate 1e\+39 A of atom 2 \(O\) is beyond"),
        ("2\n\nC 0 0 0\nO 0 0 1e300\n", "coordinate 1e\\+300"),
        ("1000000000000\nx\nC 0 0 0\n", "1,000,000,000,000 atoms, more than the limit"),
        ("-3\nx\n", "negative atom count -3"),
        ("2\n\nC 0 0 0\nO 0 0 1.2\n\n2\n\nC 0 0 0\nO 0 0 1.2\n", "blank line 5 between frames 1"),
    ],
)
def test_structure_file_geometry_refused(tmp_path, xyz, message):
    path = tmp_path / "mol.xyz"
    path.write_text(xyz)
    with pytest.raises(StructureError, match=message):
        read_structure_file(path)


def test_geometry_limits_and_good_molecule():
    z = np.array([6, 8])
    check_geometry(z, np.array([[0, 0, 0], [0, 0, 1.2]]), "CO")
    with pytest.raises(StructureError, match=r"CO: atoms 1 \(C\) and 2 \(O\) are 1\.200 A apart"):
        check_geometry(z, np.array([[0, 0, 0], [0, 0, 1.2]]), "CO", Limits(min_distance=1.5))
    with pytest.raises(StructureError, match="non-finite coordinates"):
        check_geometry(z, np.array([[0, 0, np.nan], [0, 0, 1.2]]), "CO")
    with pytest.raises(ValueError, match="min_distance"):
        Limits(min_distance=float("nan"))


def test_structure_file_frame_limit(tmp_path):
    path = tmp_path / "many.xyz"
    path.write_text("1\n\nC 0 0 0\n" * 4)
    assert len(read_structure_file(path)) == 4
    with pytest.raises(StructureError, match="more than 3 structures in one file"):
        read_structure_file(path, limits=Limits(max_molecules=3))


def test_query_smiles_refused():
    """'c1cccc~c1' (found by the fuzzer) made RDKit raise from inside the fragment split."""
    for smi in ("c1cccc~c1", "C~C"):
        with pytest.raises(StructureError, match="holds a query"):
            smiles_to_structure(smi)
