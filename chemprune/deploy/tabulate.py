"""Tabulate a trained SchNet's filters and check the result against the exact model.

:func:`tabulate_and_check` builds :meth:`SchNet.tabulated` copies and measures each on the
model's validation molecules before anything is written:

* energies: max and mean ``|dE|`` from the exact float32 model;
* the float32 floor: the exact model's own deviation from its float64 evaluation on the same
  molecules (an extensive target's per-atom outputs near -10^4 eV are summed in float32, so the
  exact model is only this accurate);
* forces: max ``|dF|`` (autograd through the interpolation) on a sample of the molecules;
* speed at batch 1 and 64 (eager, this process's threads), exact and tabulated.

The default criterion: mean ``|dE|`` at most 1% of the exact model's validation MAE, and max
``|dE|`` at most twice the float32 floor. With ``knots=None`` the count doubles from 128 until
the criterion holds (at most 8,192): the smallest table that passes, chosen by measurement.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.predict import predict_indices, throughput

__all__ = [
    "TabulateSettings",
    "TabulationFailed",
    "check_tabulated",
    "tabulate_and_check",
    "float32_floor",
    "table_bytes",
]

KNOT_LADDER = (128, 256, 512, 1024, 2048, 4096, 8192)


class TabulationFailed(RuntimeError):
    """No table passed the criterion; ``report`` holds every attempt."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TabulateSettings:
    """What :func:`tabulate_and_check` does.

    Args:
        knots: table knots per block; ``None`` searches :data:`KNOT_LADDER` for the smallest
            count that passes.
        molecules: validation molecules the energies are checked on (the first N of the split).
        force_molecules: molecules (of those) whose forces are compared.
        mean_fraction: mean ``|dE|`` allowed, as a fraction of the exact validation MAE.
        floor_factor: max ``|dE|`` allowed, as a multiple of the float32 floor.
        tolerance: an absolute max ``|dE|`` (target unit) that replaces both criteria.
        batch_size: batch of the accuracy checks.
        time_molecules: molecules timed at batch 64 (a quarter of them at batch 1); 0 skips
            timing.
    """

    knots: int | None = None
    molecules: int = 2000
    force_molecules: int = 100
    mean_fraction: float = 0.01
    floor_factor: float = 2.0
    tolerance: float | None = None
    batch_size: int = 128
    time_molecules: int = 512


def table_bytes(model: SchNet) -> int:
    """Bytes of the model's filter tables."""
    return sum(
        blk.filter_network.coeffs.numel() * blk.filter_network.coeffs.element_size()
        for blk in model.interactions
        if blk.kind == "tabulated"
    )


def _predict(model: torch.nn.Module, data: MoleculeSet, idx: np.ndarray, bs: int) -> torch.Tensor:
    return predict_indices(model, data, idx, bs).double()


@torch.no_grad()
def _predict64(model: SchNet, data: MoleculeSet, idx: np.ndarray, bs: int) -> torch.Tensor:
    """Predictions of a float64 copy of ``model`` from float64 positions."""
    m64 = copy.deepcopy(model).double().eval()
    out = []
    for b in data.batches(idx, bs):
        out.append(m64(b.z, b.pos.double(), b.batch, num_molecules=b.num_molecules))
    return torch.cat(out)


def float32_floor(
    model: SchNet,
    data: MoleculeSet,
    idx: np.ndarray,
    batch_size: int = 128,
    exact_pred: torch.Tensor | None = None,
) -> dict[str, float]:
    """``|dE|`` of the float32 model from its float64 evaluation (max, mean) on ``idx``
    (``exact_pred``: the float32 model's predictions there, if already made)."""
    if exact_pred is None:
        exact_pred = _predict(model, data, idx, batch_size)
    d = (exact_pred - _predict64(model, data, idx, batch_size)).abs()
    return {"max": float(d.max()), "mean": float(d.mean())}


def _forces(model: torch.nn.Module, data: MoleculeSet, idx: np.ndarray) -> torch.Tensor:
    b = data.collate(idx)
    pos = b.pos.clone().requires_grad_(True)
    y = model(b.z, pos, b.batch, num_molecules=b.num_molecules)
    (g,) = torch.autograd.grad(y.sum(), pos)
    return -g


def measure_speed(
    models: dict[str, torch.nn.Module], data: MoleculeSet, idx: np.ndarray, molecules: int
) -> dict[str, dict[str, float]]:
    """Molecules/s at batch 64 (``molecules``) and 1 (a quarter of them): median of 3 passes
    after a warm-up (:func:`chemprune.molecules.predict.throughput`), models in turn."""
    n64, n1 = min(molecules, len(idx)), min(max(molecules // 4, 1), len(idx))
    return {
        name: {
            "mol_per_s_b64": throughput(m, data, idx[:n64], batch_size=64),
            "mol_per_s_b1": throughput(m, data, idx[:n1], batch_size=1),
        }
        for name, m in models.items()
    }


def check_tabulated(
    exact: SchNet,
    tab: SchNet,
    data: MoleculeSet,
    idx: np.ndarray,
    *,
    exact_pred: torch.Tensor,
    settings: TabulateSettings,
    floor: dict[str, float],
    val_mae: float,
    exact_forces: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The accuracy of ``tab`` against ``exact`` and whether it passes the criterion
    (``exact_forces``: ``exact``'s forces on the first ``force_molecules``, if already made)."""
    pred = _predict(tab, data, idx, settings.batch_size)
    d = (pred - exact_pred).abs()
    fidx = idx[: settings.force_molecules]
    if exact_forces is None:
        exact_forces = _forces(exact, data, fidx)
    df = (_forces(tab, data, fidx) - exact_forces).abs()
    if settings.tolerance is not None:
        limits = {"max_abs_dE": settings.tolerance}
    else:
        limits = {
            "mean_abs_dE": settings.mean_fraction * val_mae,
            "max_abs_dE": settings.floor_factor * floor["max"],
        }
    row = {
        "knots": max(tab.table_knots),
        "table_bytes": table_bytes(tab),
        "max_abs_dE": float(d.max()),
        "mean_abs_dE": float(d.mean()),
        "max_abs_dF": float(df.max()),
        "limits": limits,
    }
    row["passed"] = all(row[k] <= v for k, v in limits.items())
    return row


def tabulate_and_check(
    model: SchNet, data: MoleculeSet, val_idx: np.ndarray, settings: TabulateSettings
) -> tuple[SchNet, dict[str, Any]]:
    """The tabulated model and its report; raises :class:`TabulationFailed` (report attached)
    when no knot count passes."""
    if data.y is None:
        raise ValueError("the molecules have no target values (the criterion needs the MAE)")
    idx = np.asarray(val_idx)[: settings.molecules]
    if len(idx) == 0:
        raise ValueError("no validation molecules to check the table on")
    model = model.eval()
    exact_pred = _predict(model, data, idx, settings.batch_size)
    y = data.y[torch.as_tensor(idx)].double()
    val_mae = float((exact_pred - y).abs().mean())
    floor = float32_floor(model, data, idx, settings.batch_size, exact_pred=exact_pred)
    exact_forces = _forces(model, data, idx[: settings.force_molecules])
    report: dict[str, Any] = {
        "molecules": len(idx),
        "force_molecules": min(settings.force_molecules, len(idx)),
        "exact_val_mae": val_mae,
        "float32_floor": floor,
        "settings": asdict(settings),
        "attempts": [],
    }
    ladder = KNOT_LADDER if settings.knots is None else (settings.knots,)
    chosen: SchNet | None = None
    for k in ladder:
        tab = model.tabulated(k).eval()
        row = check_tabulated(
            model, tab, data, idx, exact_pred=exact_pred, settings=settings,
            floor=floor, val_mae=val_mae, exact_forces=exact_forces,
        )  # fmt: skip
        report["attempts"].append(row)
        if row["passed"]:
            chosen = tab
            report.update({k2: v for k2, v in row.items() if k2 != "limits"})
            report["limits"] = row["limits"]
            break
    if chosen is None:
        last = report["attempts"][-1]
        what = ", ".join(
            f"{k} {last[k]:.3g} > {v:.3g}" for k, v in last["limits"].items() if last[k] > v
        )
        raise TabulationFailed(
            f"no table passed the check (at {last['knots']} knots: {what}); nothing written",
            report,
        )
    if settings.time_molecules > 0:
        speed = measure_speed(
            {"exact": model, "tabulated": chosen}, data, idx, settings.time_molecules
        )
        report["speed"] = speed
        report["speedup_b64"] = (
            speed["tabulated"]["mol_per_s_b64"] / speed["exact"]["mol_per_s_b64"]
        )
        report["speedup_b1"] = speed["tabulated"]["mol_per_s_b1"] / speed["exact"]["mol_per_s_b1"]
        report["threads"] = torch.get_num_threads()
    return chosen, report
