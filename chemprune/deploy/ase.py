"""ASE calculator backed by a chemprune SchNet energy model.

Example::

    from ase.build import molecule
    from ase.optimize import BFGS
    from chemprune.deploy.ase import SchNetCalculator

    atoms = molecule("CH4")
    atoms.calc = SchNetCalculator("runs/u0/best.pt")
    BFGS(atoms).run(fmax=0.05)

Energies are in eV and forces (``-dE/dpos``, by autograd) in eV/Angstrom. Only models trained
on an energy (``U0``, ``U``, ``H``, ``G`` or an atomization energy) describe a potential energy
surface; other targets are refused unless ``allow_non_energy=True``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from chemprune.deploy.runtime import with_runtime
from chemprune.molecules.checkpoint import load_model
from chemprune.molecules.chem.sanity import DEFAULT_LIMITS, Limits, check_geometry
from chemprune.molecules.chem.structures import StructureError, check_elements
from chemprune.molecules.data.targets import get_target
from chemprune.molecules.models.schnet import SchNet

__all__ = ["SchNetCalculator"]


def _is_energy(name: str) -> bool:
    try:
        return get_target(name).is_energy
    except KeyError:
        return False


class SchNetCalculator(Calculator):
    """ASE calculator for energies and forces of isolated molecules (no periodic boundaries).

    Args:
        model: a checkpoint path (loaded with :func:`chemprune.molecules.checkpoint.load_model`) or a
            :class:`SchNet` instance.
        target: for a :class:`SchNet` instance, its target dict (``name``, ``unit``, ...); the
            checkpoint's own target is used for a path. Without one, an instance is taken to
            predict an energy in eV.
        allow_non_energy: accept a model whose target is not an energy; its prediction is then
            reported as ``energy`` (in the target's unit) and the "forces" are its negative
            gradient.
        runtime: ``eager`` (default) or ``torchscript`` (a frozen graph, compiled once here:
            the same energies and forces, less time per molecular-dynamics step; see
            :mod:`chemprune.deploy.runtime`).
        limits: geometry limits checked at every call (atom count, coordinates, closest
            atoms; :class:`chemprune.molecules.chem.sanity.Limits`).
        **kwargs: passed on to :class:`ase.calculators.calculator.Calculator`.

    Raises:
        ValueError: the model predicts something other than an energy (e.g. ``gap``) and
            ``allow_non_energy`` is false.
        TypeError: ``model`` is neither a path nor a SchNet.
        FileNotFoundError, chemprune.common.atomic.CheckpointError: unusable checkpoint file.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(
        self,
        model: SchNet | os.PathLike | str,
        *,
        target: dict[str, Any] | None = None,
        allow_non_energy: bool = False,
        runtime: str = "eager",
        limits: Limits = DEFAULT_LIMITS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            net, ckpt = load_model(model)
            target = dict(ckpt["target"]) if target is None else dict(target)
            origin = f"model file {model}"
        elif isinstance(model, SchNet):
            net = model
            target = None if target is None else dict(target)
            origin = "the model"
        else:
            raise TypeError(
                f"model must be a checkpoint path or a SchNet, got {type(model).__name__}"
            )
        if target is not None:
            name = str(target.get("name", "?"))
            if not allow_non_energy and not _is_energy(name):
                what = target.get("description") or name
                unit = target.get("unit")
                unit_txt = f", in {unit}" if unit else ""
                raise ValueError(
                    f"{origin} predicts {name!r} ({what}{unit_txt}), not an energy; an ASE "
                    "calculator needs a model trained on a potential energy (U0, U, H, G or an "
                    "atomization energy). Pass allow_non_energy=True to use it anyway."
                )
        self.model = with_runtime(net, runtime)
        self.runtime = runtime
        self.limits = limits
        self.target = target
        self.unit = "eV" if target is None else str(target.get("unit", "eV"))
        first = next(net.parameters(), None)  # of the eager model (frozen graphs have none)
        self._device = first.device if first is not None else torch.device("cpu")
        self._dtype = first.dtype if first is not None else torch.float32

    def calculate(
        self,
        atoms=None,
        properties=("energy", "forces"),
        system_changes=all_changes,
    ) -> None:
        """Compute energy (eV) and forces (eV/Angstrom) of ``atoms``; both are always stored.

        Raises:
            StructureError: no atoms, non-finite positions, elements outside H, C, N, O, F,
                too many atoms or atoms closer than ``limits.min_distance``.
            ValueError: periodic boundary conditions are switched on.
            FloatingPointError: the model gave a non-finite energy or forces.
        """
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        label = f"Atoms({atoms.get_chemical_formula() or 'empty'})"
        if len(atoms) == 0:
            raise StructureError(f"{label}: contains no atoms")
        if atoms.pbc.any():
            raise ValueError(
                f"{label}: periodic boundary conditions are not supported (the model is "
                "molecular); set atoms.pbc = False"
            )
        check_elements(atoms.numbers, label)
        positions = np.asarray(atoms.positions, dtype=np.float64)
        check_geometry(atoms.numbers, positions, label, self.limits)

        z = torch.as_tensor(atoms.numbers, dtype=torch.long, device=self._device)
        pos = torch.tensor(positions, dtype=self._dtype, device=self._device, requires_grad=True)
        with torch.enable_grad():
            energy = self.model(z, pos).sum()
            (grad,) = torch.autograd.grad(energy, pos, allow_unused=True)
        forces = np.zeros_like(positions) if grad is None else -grad.detach().cpu().double().numpy()
        value = float(energy.detach().cpu())
        if not (np.isfinite(value) and np.isfinite(forces).all()):
            raise FloatingPointError(
                f"{label}: the model gave a non-finite energy or forces (energy {value}); its "
                "weights may be damaged"
            )
        self.results["energy"] = value
        self.results["forces"] = np.asarray(forces, dtype=np.float64)
