"""Input sanity checks, in one place: SMILES alphabet and size, structure size and geometry.

Pure functions used by ``predict``, ``evaluate``, the ASE calculator and data loading, so that a
molecule the models cannot describe is refused with a message naming it instead of being given
a meaningless value. Each check raises :class:`StructureError`.

The limits are generous for molecules (QM9 has at most 29 atoms) and exist to stop inputs that
would exhaust the machine: a 10,000-character SMILES drives RDKit's 3D embedding past 20 GB, a
file whose count line says 10**12 atoms would be read forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols

__all__ = [
    "StructureError",
    "Limits",
    "DEFAULT_LIMITS",
    "SMILES_CHARACTERS",
    "check_smiles_text",
    "check_atom_count",
    "check_geometry",
    "closest_pair",
    "symbol",
]

# Every character of the OpenSMILES grammar (atoms, bonds, branches, rings, charges, chirality,
# classes, the dot); letters and digits are added below. Nothing else may reach RDKit, which
# silently skips characters it does not know (a Cyrillic "С" for "C" would vanish).
SMILES_CHARACTERS = frozenset("()[]=#$:/\\.+-@%*~&") | frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)


class StructureError(ValueError):
    """An input structure is unusable; the message names the input and the problem."""


_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Limits:
    """What an input may be.

    Attributes:
        max_smiles_length: characters of one SMILES string.
        max_atoms: atoms of one structure, hydrogens included.
        max_smiles_atoms: atoms (hydrogens included) of a SMILES to be embedded in 3D, checked
            before the embedding, whose cost grows steeply with size (measured on this project's
            2-core machine, under load: 300 atoms ~10 s, 600 atoms ~100 s, 1,000 ~5 min).
        min_distance: the closest two atoms may be, in Angstrom (the shortest bond, H-H, is
            0.74 A); closer atoms are coincident or overlapping, and the model's value for them
            means nothing.
        max_coordinate: largest absolute coordinate in Angstrom; beyond it float32, in which the
            models compute, loses the precision of a bond length (and at 3.4e38 becomes inf).
        max_molecules: structures in one file (frames, or lines of a SMILES file).
        max_file_bytes: size of one input file.
    """

    max_smiles_length: int = 1000
    max_atoms: int = 1000
    max_smiles_atoms: int = 300
    min_distance: float = 0.5
    max_coordinate: float = 1.0e6
    max_molecules: int = 1_000_000
    max_file_bytes: int = 2**30

    def __post_init__(self) -> None:
        for name in (
            "max_smiles_length",
            "max_atoms",
            "max_smiles_atoms",
            "max_molecules",
            "max_file_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (np.isfinite(self.min_distance) and self.min_distance >= 0):
            raise ValueError(f"min_distance must be a finite number >= 0, got {self.min_distance}")
        if not (np.isfinite(self.max_coordinate) and 0 < self.max_coordinate <= _F32_MAX):
            raise ValueError(f"max_coordinate must be in (0, {_F32_MAX:.3g}]")


DEFAULT_LIMITS = Limits()


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` for messages (``X (dummy atom)`` for 0)."""
    if z == 0:
        return "X (dummy atom)"
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"


def check_smiles_text(smiles: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """The stripped SMILES if it is made of SMILES characters only and not too long.

    Raises:
        StructureError: ``"invalid SMILES '<s>': character 'С' (U+0421) at position 2 is not a
            SMILES character"``, whitespace inside it, an empty string, or one longer than
            ``limits.max_smiles_length``.
    """
    if not isinstance(smiles, str):
        raise StructureError(f"invalid SMILES {smiles!r}: not a string")
    text = smiles.strip()
    shown = _short(smiles)
    if not text:
        raise StructureError(f"invalid SMILES {shown}: empty string")
    if len(text) > limits.max_smiles_length:
        raise StructureError(
            f"invalid SMILES {shown}: {len(text):,} characters, more than the limit of "
            f"{limits.max_smiles_length:,}"
        )
    for i, ch in enumerate(text, start=1):
        if ch in SMILES_CHARACTERS:
            continue
        if ch.isspace():
            raise StructureError(
                f"invalid SMILES {shown}: contains whitespace (at position {i}); one SMILES per "
                "argument, fragments joined by '.'"
            )
        raise StructureError(
            f"invalid SMILES {shown}: character {ch!r} (U+{ord(ch):04X}) at position {i} is not a "
            "SMILES character"
        )
    return text


def _short(text: object, limit: int = 80) -> str:
    s = repr(text)
    return s if len(s) <= limit else s[: limit - 5] + "...'" + f" ({len(str(text)):,} chars)"


def check_atom_count(n: int, name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise if a structure has more than ``limits.max_atoms`` atoms."""
    if n > limits.max_atoms:
        raise StructureError(
            f"{name}: {n:,} atoms, more than the limit of {limits.max_atoms:,} (the models are "
            "for small molecules; QM9 has at most 29 atoms)"
        )


def closest_pair(pos: np.ndarray) -> tuple[int, int, float]:
    """Indices ``(i, j)``, ``i < j``, of the two closest atoms and their distance.

    Exact, in blocks of rows so memory stays ``O(block * N)``; ``(-1, -1, inf)`` for fewer than
    two atoms.
    """
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    n = len(pos)
    best_i, best_j, best_d2 = -1, -1, np.inf
    block = max(1, 2_000_000 // max(n, 1))
    cols = np.arange(n)
    for start in range(0, n, block):
        rows = pos[start : start + block]
        d2 = ((rows[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
        d2[cols[None, :] <= (start + np.arange(len(rows)))[:, None]] = np.inf  # keep j > i
        r, c = divmod(int(np.argmin(d2)), n)
        if d2[r, c] < best_d2:
            best_i, best_j, best_d2 = start + r, c, float(d2[r, c])
    return best_i, best_j, float(np.sqrt(best_d2))


def check_geometry(
    z: Sequence[int] | np.ndarray,
    pos: np.ndarray,
    name: str,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Raise unless ``pos`` is a geometry the models can be trusted on.

    Checks, in order: the atom count, finite coordinates that float32 represents (``|x| <=
    limits.max_coordinate``), and no two atoms closer than ``limits.min_distance``.

    Raises:
        StructureError: e.g. ``"mol.xyz: atoms 1 (C) and 2 (C) are 0.000 A apart (closer than
            0.5 A): coincident or overlapping atoms"``.
    """
    z = np.asarray(z).reshape(-1)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    check_atom_count(len(z), name, limits)
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise StructureError(
            f"{name}: non-finite coordinates (atom {i + 1} of {len(z)}, {symbol(int(z[i]))})"
        )
    big = np.abs(pos).max(axis=1) > limits.max_coordinate
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise StructureError(
            f"{name}: coordinate {np.abs(pos[i]).max():.3g} A of atom {i + 1} "
            f"({symbol(int(z[i]))}) is beyond +/-{limits.max_coordinate:.3g} A, where the "
            "model's float32 arithmetic loses bond-length precision"
        )
    if limits.min_distance > 0 and len(z) > 1:
        i, j, d = closest_pair(pos)
        if d < limits.min_distance:
            raise StructureError(
                f"{name}: atoms {i + 1} ({symbol(int(z[i]))}) and {j + 1} ({symbol(int(z[j]))}) "
                f"are {d:.3f} A apart (closer than {limits.min_distance:g} A): coincident or "
                "overlapping atoms"
            )
