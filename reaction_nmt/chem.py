"""Chemistry helpers: pure functions over SMILES strings (RDKit).

Canonicalisation keeps stereochemistry and removes atom-map numbers; random SMILES give the
same molecule in another atom order (data augmentation). Every function that parses raises
:class:`InvalidSmilesError` naming the molecule that RDKit could not read.
"""

from __future__ import annotations

import random

from rdkit import Chem, RDLogger

__all__ = [
    "InvalidSmilesError",
    "parse",
    "canonicalize",
    "canonicalize_or_none",
    "canonical_molecules",
    "randomize",
    "strip_atom_maps",
    "atom_map_numbers",
]

RDLogger.DisableLog("rdApp.*")


class InvalidSmilesError(ValueError):
    """RDKit cannot parse a SMILES; the message names it."""

    def __init__(self, smiles: str, reason: str = "RDKit cannot parse it") -> None:
        self.smiles = smiles
        super().__init__(f"invalid SMILES {smiles!r}: {reason}")


def parse(smiles: str) -> Chem.Mol:
    """RDKit molecule for ``smiles``; each '.'-separated molecule is checked so the error
    names the one that fails."""
    if not smiles or not smiles.strip():
        raise InvalidSmilesError(smiles, "empty")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        for part in smiles.split("."):
            if not part or Chem.MolFromSmiles(part) is None:
                raise InvalidSmilesError(part)
        raise InvalidSmilesError(smiles)
    return mol


def strip_atom_maps(mol: Chem.Mol) -> Chem.Mol:
    """A copy of ``mol`` with every atom-map number set to 0."""
    mol = Chem.Mol(mol)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    return mol


def atom_map_numbers(smiles: str) -> set[int]:
    """The non-zero atom-map numbers in ``smiles``."""
    return {a.GetAtomMapNum() for a in parse(smiles).GetAtoms() if a.GetAtomMapNum()}


def canonicalize(smiles: str, *, keep_stereo: bool = True) -> str:
    """RDKit canonical SMILES without atom maps; raises :class:`InvalidSmilesError`.

    Several molecules ('.'-separated) come back in RDKit's canonical fragment order, so the
    result does not depend on the input order.
    """
    mol = strip_atom_maps(parse(smiles))
    return Chem.MolToSmiles(mol, isomericSmiles=keep_stereo)


def canonicalize_or_none(smiles: str, *, keep_stereo: bool = True) -> str | None:
    """Like :func:`canonicalize` but ``None`` for anything RDKit cannot read."""
    try:
        return canonicalize(smiles, keep_stereo=keep_stereo)
    except InvalidSmilesError:
        return None


def canonical_molecules(smiles: str, *, keep_stereo: bool = True) -> list[str]:
    """Canonical SMILES of each molecule in a '.'-separated SMILES, in input order."""
    return [canonicalize(part, keep_stereo=keep_stereo) for part in smiles.split(".")]


def randomize(smiles: str, *, rng: random.Random, shuffle_molecules: bool = True) -> str:
    """The same molecules written from a random atom order (and random molecule order).

    Stereochemistry is kept; canonicalising the result gives the canonical form of the input.
    """
    parts = [strip_atom_maps(parse(p)) for p in smiles.split(".")]
    if shuffle_molecules:
        rng.shuffle(parts)
    out = []
    for mol in parts:
        order = list(range(mol.GetNumAtoms()))
        rng.shuffle(order)
        renumbered = Chem.RenumberAtoms(mol, order)
        out.append(Chem.MolToSmiles(renumbered, canonical=False, isomericSmiles=True))
    return ".".join(out)
