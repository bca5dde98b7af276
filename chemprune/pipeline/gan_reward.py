"""The chemistry that the GAN engine's validity options take as plain tensors and callables,
for QM9's graph encoding (:mod:`chemprune.molecules.chem.molgraph`: atoms pad/C/N/O/F, bonds
none/single/double/triple, kekulised).

* :func:`valence_tables`: ``max_valence [T]`` (pad 0, C 4, N 3, O 2, F 1) and ``bond_order [Y]``
  (none 0, single 1, double 2, triple 3; 1.5 for an aromatic type, which this encoding has not)
  for :func:`chemprune.engines.gan.penalties.validity_penalties`.
* :func:`reward_function`: MolGAN's reward of discrete one-hot graphs through the project's
  decoder: ``validity`` (1 for a graph that decodes to one valid connected molecule, else 0) or
  ``validity_qed`` (RDKit's QED of the valid ones, 0 for the others).
* :func:`chemistry_options`: the engine keyword arguments that an engine-options record (plain
  values, as saved in a generator file) implies, given the reward's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from chemprune.molecules.chem.molgraph import ATOM_TYPES, BOND_TYPES, decode

__all__ = ["REWARDS", "chemistry_options", "reward_function", "valence_tables"]

MAX_VALENCE = {"pad": 0, "C": 4, "N": 3, "O": 2, "F": 1}
BOND_ORDER = {"none": 0.0, "single": 1.0, "double": 2.0, "triple": 3.0, "aromatic": 1.5}
REWARDS = ("validity", "validity_qed")


def valence_tables() -> tuple[Tensor, Tensor]:
    """``(max_valence [T], bond_order [Y])`` in the encoding's type order."""
    return (
        torch.tensor([float(MAX_VALENCE[a]) for a in ATOM_TYPES]),
        torch.tensor([BOND_ORDER[b] for b in BOND_TYPES]),
    )


def _qed(smiles: str) -> float:
    from rdkit import Chem
    from rdkit.Chem import QED

    mol = Chem.MolFromSmiles(smiles)
    return 0.0 if mol is None else float(QED.qed(mol))


def reward_function(kind: str) -> Callable[[tuple[Tensor, Tensor]], Tensor]:
    """The reward ``[B]`` of one-hot graphs ``(x [B, N, T], adj [B, N, N, Y])``."""
    if kind not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {kind!r}")

    def reward(graphs: tuple[Tensor, Tensor]) -> Tensor:
        atoms = graphs[0].argmax(-1).cpu().numpy()
        bonds = graphs[1].argmax(-1).cpu().numpy()
        values = []
        for a, b in zip(atoms, bonds, strict=True):
            smiles = decode(a, b)
            if smiles is None:
                values.append(0.0)
            else:
                values.append(_qed(smiles) if kind == "validity_qed" else 1.0)
        return torch.tensor(values, dtype=torch.float32)

    return reward


def chemistry_options(options: dict[str, Any], reward: str = "validity") -> dict[str, Any]:
    """``options`` plus the valence vectors (when ``valence_weight`` > 0) and the reward
    callable (when ``rl_weight`` > 0)."""
    out = dict(options)
    if out.get("valence_weight"):
        out["max_valence"], out["bond_order"] = valence_tables()
    if out.get("rl_weight"):
        out["reward_fn"] = reward_function(reward)
    return out
