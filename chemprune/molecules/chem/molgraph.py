"""Molecules as fixed-size graphs for generative models (MolGAN's encoding of QM9).

A molecule of at most ``max_atoms`` heavy atoms becomes two integer arrays:

* ``atoms[max_atoms]``: an index into :data:`ATOM_TYPES` per slot (0 = padding, an empty slot);
* ``bonds[max_atoms, max_atoms]``: a symmetric index into :data:`BOND_TYPES` per pair (0 = no
  bond), with a zero diagonal.

Hydrogens are implicit, aromatic rings are kekulised (single and double bonds) and formal
charges and stereochemistry are not represented, as in MolGAN (De Cao & Kipf 2018: C, N, O, F,
bonds none/single/double/triple, at most 9 heavy atoms). :func:`decode` builds the molecule back
with RDKit and sanitises it; a graph that is not a valid molecule (a valence broken, a
disconnected graph, no atom) decodes to ``None``. :func:`canonical` is the canonical,
non-isomeric SMILES that the round trip preserves and the generation metrics compare.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from rdkit import Chem, RDLogger

__all__ = [
    "ATOM_TYPES",
    "BOND_TYPES",
    "MAX_ATOMS",
    "GraphEncodingError",
    "canonical",
    "decode",
    "encode",
    "encode_many",
]

ATOM_TYPES: tuple[str, ...] = ("pad", "C", "N", "O", "F")
BOND_TYPES: tuple[str, ...] = ("none", "single", "double", "triple")
MAX_ATOMS = 9

_RD_BONDS = {
    Chem.BondType.SINGLE: 1,
    Chem.BondType.DOUBLE: 2,
    Chem.BondType.TRIPLE: 3,
}
_BOND_OF = {v: k for k, v in _RD_BONDS.items()}


class GraphEncodingError(ValueError):
    """A molecule cannot be written as a graph of the fixed encoding; the message says why."""


def _quiet() -> None:
    RDLogger.DisableLog("rdApp.*")


def canonical(smiles: str) -> str | None:
    """Canonical non-isomeric SMILES of ``smiles``, or ``None`` when RDKit cannot parse it."""
    _quiet()
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)


def encode(smiles: str, max_atoms: int = MAX_ATOMS) -> tuple[np.ndarray, np.ndarray]:
    """``(atoms, bonds)`` of ``smiles`` (see the module docstring).

    Raises:
        GraphEncodingError: the SMILES is invalid, or the molecule has more than ``max_atoms``
            heavy atoms, an element outside C/N/O/F, a formal charge or a radical (which the
            encoding cannot represent), or a bond other than single/double/triple after
            kekulisation.
    """
    _quiet()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise GraphEncodingError(f"SMILES {smiles!r} is not a valid molecule")
    n = mol.GetNumAtoms()
    if n == 0:
        raise GraphEncodingError(f"SMILES {smiles!r} has no heavy atom")
    if n > max_atoms:
        raise GraphEncodingError(
            f"SMILES {smiles!r} has {n} heavy atoms; the encoding holds at most {max_atoms}"
        )
    Chem.Kekulize(mol, clearAromaticFlags=True)
    atoms = np.zeros(max_atoms, dtype=np.int64)
    bonds = np.zeros((max_atoms, max_atoms), dtype=np.int64)
    for a in mol.GetAtoms():
        sym = a.GetSymbol()
        if sym not in ATOM_TYPES[1:]:
            raise GraphEncodingError(
                f"SMILES {smiles!r} contains {sym}; the encoding holds only "
                f"{', '.join(ATOM_TYPES[1:])}"
            )
        if a.GetFormalCharge() != 0 or a.GetNumRadicalElectrons() != 0:
            raise GraphEncodingError(
                f"SMILES {smiles!r} has a charged or radical atom ({sym}, index {a.GetIdx()}); "
                "the encoding has no formal charges"
            )
        atoms[a.GetIdx()] = ATOM_TYPES.index(sym)
    for b in mol.GetBonds():
        t = _RD_BONDS.get(b.GetBondType())
        if t is None:
            raise GraphEncodingError(
                f"SMILES {smiles!r} has a {b.GetBondType()} bond after kekulisation"
            )
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = t
    return atoms, bonds


def decode(atoms: np.ndarray, bonds: np.ndarray) -> str | None:
    """Canonical SMILES of the graph, or ``None`` when it is not one valid, connected molecule.

    Padding slots are dropped with any bond that touches them; the diagonal of ``bonds`` and
    its lower triangle are ignored (the upper triangle is read).
    """
    _quiet()
    atoms = np.asarray(atoms)
    bonds = np.asarray(bonds)
    if atoms.ndim != 1 or bonds.shape != (len(atoms), len(atoms)):
        raise ValueError(f"atoms must be [N] and bonds [N, N]; got {atoms.shape} and {bonds.shape}")
    if atoms.min(initial=0) < 0 or atoms.max(initial=0) >= len(ATOM_TYPES):
        raise ValueError(f"atom indices must lie in [0, {len(ATOM_TYPES)})")
    if bonds.min(initial=0) < 0 or bonds.max(initial=0) >= len(BOND_TYPES):
        raise ValueError(f"bond indices must lie in [0, {len(BOND_TYPES)})")
    slots = [i for i, a in enumerate(atoms.tolist()) if a != 0]
    if not slots:
        return None
    mol = Chem.RWMol()
    index = {}
    for i in slots:
        index[i] = mol.AddAtom(Chem.Atom(ATOM_TYPES[int(atoms[i])]))
    for a, i in enumerate(slots):
        for j in slots[a + 1 :]:
            t = int(bonds[i, j])
            if t:
                mol.AddBond(index[i], index[j], _BOND_OF[t])
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 - RDKit raises several kinds for a broken valence
        return None
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    if not smiles or "." in smiles:  # MolGAN's validity: one connected molecule
        return None
    return smiles


def encode_many(
    smiles: Iterable[str], max_atoms: int = MAX_ATOMS
) -> tuple[np.ndarray, np.ndarray, list[int], dict[str, int]]:
    """Encode every SMILES that fits: ``(atoms [M, N], bonds [M, N, N], kept indices, skipped
    counts by reason)``. The reasons are ``invalid``, ``too_large``, ``element``, ``charged``
    and ``bond``."""
    all_atoms, all_bonds, kept = [], [], []
    skipped: dict[str, int] = {}
    for i, s in enumerate(smiles):
        try:
            a, b = encode(s, max_atoms)
        except GraphEncodingError as err:
            msg = str(err)
            reason = (
                "too_large" if "heavy atoms" in msg
                else "element" if "contains" in msg
                else "charged" if "charged" in msg
                else "bond" if "bond after" in msg
                else "invalid"
            )  # fmt: skip
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        all_atoms.append(a)
        all_bonds.append(b)
        kept.append(i)
    if not kept:
        shape = (0, max_atoms)
        return np.zeros(shape, np.int64), np.zeros((*shape, max_atoms), np.int64), kept, skipped
    return np.stack(all_atoms), np.stack(all_bonds), kept, skipped
