"""Tests for chemprune.molecules.chem.structures: SMILES embedding, structure files, batching."""

from __future__ import annotations

from collections import Counter

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from chemprune.molecules.chem import (
    Structure,
    StructureError,
    check_elements,
    read_smiles_file,
    read_structure_file,
    smiles_to_structure,
    structures_to_batch,
)


def _co_distance(st: Structure) -> float:
    c = np.flatnonzero(st.z == 6)
    o = np.flatnonzero(st.z == 8)[0]
    return float(np.linalg.norm(st.pos[c] - st.pos[o], axis=1).min())


def test_ethanol_atoms_and_geometry():
    st = smiles_to_structure("CCO")
    assert st.name == "CCO" and st.source == "smiles"
    assert st.z.dtype == np.int64 and st.z.shape == (9,)
    assert st.pos.dtype == np.float64 and st.pos.shape == (9, 3)
    assert Counter(st.z.tolist()) == {6: 2, 8: 1, 1: 6}
    assert 1.35 <= _co_distance(st) <= 1.50
    assert np.isfinite(st.pos).all()


def test_embedding_is_deterministic_for_a_seed():
    a = smiles_to_structure("CC(=O)NC1CC1", seed=7)
    b = smiles_to_structure("CC(=O)NC1CC1", seed=7)
    np.testing.assert_array_equal(a.z, b.z)
    np.testing.assert_allclose(a.pos, b.pos, atol=1e-8)


def test_unoptimized_and_multifragment():
    raw = smiles_to_structure("CCO", optimize=False)
    assert raw.pos.shape == (9, 3)
    frag = smiles_to_structure("C.O")
    assert Counter(frag.z.tolist()) == {6: 1, 8: 1, 1: 6}


@pytest.mark.parametrize(
    ("smiles", "charge"),
    [("[NH4+]", "+1"), ("[C+5]", "+5"), ("C[O-]", "-1"), ("[NH4+].[NH4+]", "+2"),
     ("[NH3+]CC(=O)[O-].[NH4+]", "+1")],
)  # fmt: skip
def test_net_charge_refused(smiles, charge):
    with pytest.raises(StructureError) as err:
        smiles_to_structure(smiles)
    assert str(err.value) == (
        f"SMILES {smiles!r} has net charge {charge}; the models are for neutral molecules"
    )


@pytest.mark.parametrize(
    ("smiles", "atoms"),
    [
        ("C[N+](=O)[O-]", {6: 1, 7: 1, 8: 2, 1: 3}),  # nitromethane
        ("[NH3+]CC(=O)[O-]", {7: 1, 6: 2, 8: 2, 1: 5}),  # glycine zwitterion
        ("C[NH3+].[O-]C=O", {6: 2, 7: 1, 8: 2, 1: 7}),  # an ion pair: neutral overall
        ("[CH3]", {6: 1, 1: 3}),  # a radical: not checked
    ],
)
def test_charges_that_cancel_are_accepted(smiles, atoms):
    assert Counter(smiles_to_structure(smiles).z.tolist()) == atoms


@pytest.mark.parametrize("smiles", ["C1CC", "Xx", "C(C", "CN(C)(C)(C)C"])
def test_invalid_smiles_names_input(smiles):
    with pytest.raises(StructureError, match="invalid SMILES") as info:
        smiles_to_structure(smiles)
    assert repr(smiles) in str(info.value)
    assert str(info.value).split(": ", 1)[1].strip()  # a reason follows


def test_unclosed_ring_reason():
    with pytest.raises(StructureError, match="unclosed ring"):
        smiles_to_structure("C1CC")


@pytest.mark.parametrize("smiles", ["", "   "])
def test_empty_smiles(smiles):
    with pytest.raises(StructureError, match="invalid SMILES .*empty"):
        smiles_to_structure(smiles)


@pytest.mark.parametrize(
    ("smiles", "elements"), [("CCl", "Cl"), ("CS", "S"), ("[Na+].[Cl-]", "Cl, Na")]
)
def test_unsupported_elements(smiles, elements):
    with pytest.raises(StructureError) as info:
        smiles_to_structure(smiles)
    msg = str(info.value)
    assert repr(smiles) in msg
    assert f"element(s) {elements} not supported" in msg
    assert "H, C, N, O, F" in msg


def test_check_elements_direct():
    check_elements([1, 6, 7, 8, 9], "ok")
    with pytest.raises(StructureError, match=r"^thing: element\(s\) Cl, S not supported"):
        check_elements([6, 16, 17, 16], "thing")


def test_embedding_failure_is_reported(monkeypatch):
    from rdkit.Chem import AllChem

    monkeypatch.setattr(AllChem, "EmbedMolecule", lambda *a, **k: -1)
    with pytest.raises(StructureError, match="could not embed 3D coordinates for SMILES 'CCO'"):
        smiles_to_structure("CCO", max_attempts=2)


def test_xyz_round_trip(tmp_path):
    atoms = molecule("CH3OH")
    path = tmp_path / "methanol.xyz"
    ase.io.write(path, atoms)
    (st,) = read_structure_file(path)
    assert st.name == str(path) and st.source == str(path)
    np.testing.assert_array_equal(st.z, atoms.numbers)
    np.testing.assert_allclose(st.pos, atoms.positions, atol=1e-6)


def test_sdf_file(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    path = tmp_path / "m.sdf"
    Chem.MolToMolFile(mol, str(path))
    (st,) = read_structure_file(path)
    assert Counter(st.z.tolist()) == {6: 1, 8: 1, 1: 4}


def test_multi_frame_xyz(tmp_path):
    path = tmp_path / "two.xyz"
    ase.io.write(path, [molecule("H2O"), molecule("CH4")])
    structures = read_structure_file(path)
    assert [s.name for s in structures] == [f"{path}#1", f"{path}#2"]
    assert [len(s.z) for s in structures] == [3, 5]


def test_unsupported_element_names_frame(tmp_path):
    path = tmp_path / "mixed.xyz"
    ase.io.write(path, [molecule("H2O"), Atoms("CCl", positions=[[0, 0, 0], [1.8, 0, 0]])])
    with pytest.raises(StructureError, match=r"mixed\.xyz \(frame 2\): element\(s\) Cl"):
        read_structure_file(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5\ncomment\nC 0 0 0\nO 1.4 0 0\nH 0 1 0\n", "declares 5 atoms but the file ends after 3"),
        ("3\ncomment\nC 0 0 0\nO abc 0 0\nH 0 1 0\n", "could not read"),
        ("garbage\nmore\n", "header"),
    ],
)
def test_malformed_xyz(tmp_path, text, reason):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(StructureError, match=str(path)) as info:
        read_structure_file(path)
    assert reason in str(info.value)


def test_non_finite_and_zero_atoms(tmp_path):
    nan = tmp_path / "nan.xyz"
    nan.write_text("2\n\nC 0 0 0\nO nan 0 0\n")
    with pytest.raises(StructureError, match=r"nan\.xyz: non-finite coordinates \(atom 2"):
        read_structure_file(nan)
    zero = tmp_path / "zero.xyz"
    zero.write_text("0\n\n")
    with pytest.raises(StructureError, match=r"zero\.xyz: contains no atoms"):
        read_structure_file(zero)


def test_empty_missing_and_unknown_files(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(StructureError, match=f"{empty} is empty"):
        read_structure_file(empty)
    missing = tmp_path / "missing.xyz"
    with pytest.raises(StructureError, match=f"{missing} does not exist"):
        read_structure_file(missing)
    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello\n")
    with pytest.raises(StructureError, match="unknown structure file format"):
        read_structure_file(unknown)


def test_read_smiles_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("# header comment\n\nCCO ethanol\n  c1ccccc1   benzene ring  \nC#N\n")
    assert read_smiles_file(path) == [
        ("CCO", "ethanol"),
        ("c1ccccc1", "benzene ring"),
        ("C#N", f"{path}:5"),
    ]


def test_read_smiles_file_errors(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        read_smiles_file(tmp_path / "nope.smi")
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    with pytest.raises(StructureError, match=f"{empty} is empty"):
        read_smiles_file(empty)
    comments = tmp_path / "comments.smi"
    comments.write_text("# only\n\n")
    with pytest.raises(StructureError, match="contains no SMILES"):
        read_smiles_file(comments)


def test_structures_to_batch():
    a = Structure("a", np.array([8, 1, 1]), np.zeros((3, 3)), "test")
    b = Structure("b", np.array([6, 1, 1, 1, 1]), np.ones((5, 3)), "test")
    z, pos, batch = structures_to_batch([a, b])
    assert z.dtype == torch.long and pos.dtype == torch.float32 and batch.dtype == torch.long
    assert z.shape == (8,) and pos.shape == (8, 3) and batch.shape == (8,)
    assert batch.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert z.tolist() == [8, 1, 1, 6, 1, 1, 1, 1]
    assert float(pos[3:].min()) == 1.0
    with pytest.raises(ValueError):
        structures_to_batch([])
