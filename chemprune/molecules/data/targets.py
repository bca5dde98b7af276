"""The 12 standard QM9 targets in the units papers report, plus atomization energies.

Source columns are those of the ``qm9pack`` CSV files (energies in hartree). Conversions use
CODATA 2018 (1 Ha = 27.211386246 eV), the same constant as PyG's QM9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

    from chemprune.molecules.data.batching import MoleculeSet

__all__ = [
    "HARTREE_TO_EV",
    "ELEMENTS",
    "SYMBOL_TO_Z",
    "Target",
    "TARGETS",
    "ATOM_REFERENCE_HARTREE",
    "get_target",
    "atomref_ev",
    "target_statistics",
    "MU",
    "ALPHA",
    "HOMO",
    "LUMO",
    "GAP",
    "R2",
    "ZPVE",
    "U0",
    "U",
    "H",
    "G",
    "CV",
    "U0_ATOM",
    "U_ATOM",
    "H_ATOM",
    "G_ATOM",
]

HARTREE_TO_EV = 27.211386246

#: Elements present in QM9 (and the only ones the models are trained on).
ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
SYMBOL_TO_Z: dict[str, int] = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

#: B3LYP/6-31G(2df,p) energies of the free atoms (hartree), from QM9's ``atomref.txt``.
ATOM_REFERENCE_HARTREE: dict[str, dict[int, float]] = {
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063162, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
}


@dataclass(frozen=True)
class Target:
    """A QM9 property.

    Attributes:
        name: short name used on the command line (``gap``, ``U0``, ...).
        column: source column in qm9pack's CSV.
        unit: unit of the values the model predicts.
        factor: multiply the source column by this to get ``unit``.
        readout: ``sum`` for extensive properties, ``mean`` for orbital energies.
        atomization_of: for atomization energies, the total energy whose atom references are
            subtracted (``U0``, ``U``, ``H``, ``G``).
        description: human-readable name.
    """

    name: str
    column: str
    unit: str
    factor: float
    readout: str
    description: str
    atomization_of: str | None = None

    @property
    def is_energy(self) -> bool:
        """True for total or atomization energies (usable as a potential energy surface)."""
        return self.name in ("U0", "U", "H", "G") or self.atomization_of is not None


MU = Target("mu", "Dipole_debye", "D", 1.0, "sum", "dipole moment")
ALPHA = Target("alpha", "Polarizability_bohr3", "a0^3", 1.0, "sum", "isotropic polarizability")
HOMO = Target("homo", "HOMO_au", "eV", HARTREE_TO_EV, "mean", "HOMO energy")
LUMO = Target("lumo", "LUMO_au", "eV", HARTREE_TO_EV, "mean", "LUMO energy")
GAP = Target("gap", "HOMO_LUMO_gap_au", "eV", HARTREE_TO_EV, "mean", "HOMO-LUMO gap")
R2 = Target("r2", "R2_bohr2", "a0^2", 1.0, "sum", "electronic spatial extent")
ZPVE = Target("zpve", "ZPVE_au", "eV", HARTREE_TO_EV, "sum", "zero-point vibrational energy")
U0 = Target("U0", "InternalEnergy_0K_au", "eV", HARTREE_TO_EV, "sum", "internal energy at 0 K")
U = Target("U", "InternalEnergy_298K_au", "eV", HARTREE_TO_EV, "sum", "internal energy at 298.15 K")
H = Target("H", "Enthalphy_298K_au", "eV", HARTREE_TO_EV, "sum", "enthalpy at 298.15 K")
G = Target("G", "GibbsFreeEnergy_298K_au", "eV", HARTREE_TO_EV, "sum", "free energy at 298.15 K")
CV = Target(
    "Cv", "Heatcapacity_Cv_cal_mol_K", "cal/(mol K)", 1.0, "sum", "heat capacity at 298.15 K"
)
U0_ATOM = Target(
    "U0_atom", U0.column, "eV", HARTREE_TO_EV, "sum", "atomization energy at 0 K", "U0"
)
U_ATOM = Target(
    "U_atom", U.column, "eV", HARTREE_TO_EV, "sum", "atomization energy (U, 298.15 K)", "U"
)
H_ATOM = Target("H_atom", H.column, "eV", HARTREE_TO_EV, "sum", "atomization enthalpy", "H")
G_ATOM = Target("G_atom", G.column, "eV", HARTREE_TO_EV, "sum", "atomization free energy", "G")

#: All targets by name; the first 12 are the standard ones, in the usual order.
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        MU,
        ALPHA,
        HOMO,
        LUMO,
        GAP,
        R2,
        ZPVE,
        U0,
        U,
        H,
        G,
        CV,
        U0_ATOM,
        U_ATOM,
        H_ATOM,
        G_ATOM,
    )
}

#: Source columns of the cached property table, in order.
SOURCE_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(t.column for t in TARGETS.values()))


def get_target(name: str) -> Target:
    """Look a target up by name (case-insensitive when unambiguous)."""
    if name in TARGETS:
        return TARGETS[name]
    folded = [t for t in TARGETS.values() if t.name.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise KeyError(f"unknown QM9 target {name!r}; choose one of: {', '.join(TARGETS)}")


def atomref_ev(target: Target, max_z: int = 100) -> list[float] | None:
    """Per-element reference values (target unit) to add per atom, or ``None``.

    Total energies get the free-atom energies, so the network only has to learn the atomization
    part; atomization energies and other targets get none.
    """
    if target.atomization_of is not None or target.name not in ATOM_REFERENCE_HARTREE:
        return None
    ref = [0.0] * max_z
    for z, e in ATOM_REFERENCE_HARTREE[target.name].items():
        ref[z] = e * HARTREE_TO_EV
    return ref


def target_statistics(
    data: MoleculeSet, indices: np.ndarray, target: Target, atomref: list[float] | None
) -> tuple[float, float]:
    """``(mean, std)`` for the model's per-atom standardisation, from the training molecules.

    Sum readout: statistics of ``(y - sum of atom references) / n_atoms``; mean readout: of ``y``.
    """
    idx = torch.as_tensor(indices, dtype=torch.long)
    y = data.y[idx].double()
    if target.readout == "mean":
        vals = y
    else:
        counts = data.counts[idx].double()
        if atomref is not None:
            ref = torch.tensor(atomref, dtype=torch.float64)
            per_atom = ref[data.z]
            mol_ref = torch.zeros(len(data), dtype=torch.float64).index_add_(
                0, torch.repeat_interleave(torch.arange(len(data)), data.counts), per_atom
            )
            y = y - mol_ref[idx]
        vals = y / counts
    std = float(vals.std()) if vals.numel() > 1 else 1.0
    return float(vals.mean()), (std if std > 1e-12 else 1.0)
