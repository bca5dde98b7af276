"""Architecture search for a cheaper SchNet, guided by a trained one (the pipeline of
``chemprune search``; the engine is :mod:`chemprune.engines.nas`).

The teacher's training molecules are split in two halves (fixed by ``seed``): the supernet's
weights learn on one, the architecture parameters on the other (DARTS' protocol); validation
and test molecules are never seen. The supernet copies the teacher's atom basis, depth, radial
basis, head and standardisation (:meth:`SchNetSupernet.like`), candidates' costs are their
multiply-accumulates on 64 training molecules, and the reference cost is the teacher's on the
same molecules. The derived architecture is written as JSON (:func:`arch_record`) for
retraining.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chemprune.common.progress import progress_bar
from chemprune.engines.nas import NAS_ENGINES
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.splits import Split
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.nas import SchNetSupernet
from chemprune.molecules.schnet.nas_distill import schnet_search_loss
from chemprune.pipeline.compress_schnet import model_stats
from chemprune.pipeline.search_settings import SearchSettings

__all__ = ["ARCH_FORMAT", "ArchFile", "SearchSettings", "arch_record", "read_arch", "search_schnet"]

ARCH_FORMAT = "chemprune-architecture"


def _cost(model: SchNet, mset: MoleculeSet, indices: np.ndarray) -> dict[str, int]:
    """MACs on the first 64 of ``indices`` and parameters (:func:`model_stats`)."""
    s = model_stats(model, mset, indices)
    return {"macs": int(s["macs_per_batch64"]), "parameters": int(s["params"])}


def _halves(train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(train).copy()
    np.random.default_rng(seed).shuffle(idx)
    half = len(idx) // 2
    if half < 1:
        raise ValueError(f"the training split has {len(idx)} molecules: too few to search")
    return idx[:half], idx[half:]


def _forever(mset: MoleculeSet, idx: np.ndarray, batch_size: int, seed: int):
    epoch = 0
    while True:
        yield from mset.batches(idx, batch_size, shuffle=True, seed=seed * 7919 + epoch)
        epoch += 1


def search_schnet(
    teacher: SchNet,
    mset: MoleculeSet,
    split: Split,
    settings: SearchSettings,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[SchNetSupernet, dict[str, Any]]:
    """Search by ``settings`` (checked first: :meth:`SearchSettings.check`); returns the trained
    supernet and a report (genotype, costs, losses).

    Stops after ``steps`` search steps or ``minutes``, whichever comes first (at least one of
    them); the first ``warmup_steps`` train the weights only. ``filter_grid`` (knots): the
    supernet's and the teacher's filters are interpolated from a grid during the search
    (:attr:`SchNet.filter_grid`; costs are measured exact, the teacher is given back exact).
    ``target_macs`` (a fraction of the teacher's MACs) turns on the cost penalty
    ``cost_weight * max(0, E[MACs] / teacher MACs - target_macs)``.
    """
    settings.check()
    engine, order, distill, candidates = (
        settings.engine, settings.order, settings.distill, settings.candidates
    )  # fmt: skip
    target_macs, cost_weight, steps, minutes = (
        settings.target_macs, settings.cost_weight, settings.steps, settings.minutes
    )  # fmt: skip
    batch_size, lr, arch_lr, seed = (
        settings.batch_size, settings.lr, settings.arch_lr, settings.seed
    )  # fmt: skip
    warmup_steps, filter_grid = settings.warmup, settings.filter_grid
    torch.manual_seed(seed)
    w_idx, a_idx = _halves(split.train, seed)
    supernet = SchNetSupernet.like(teacher, candidates=candidates)
    train_idx = np.asarray(split.train)
    example = mset.collate(train_idx[:64])
    costs = supernet.measure_costs(example.z, example.pos, example.batch)
    teacher_cost = _cost(teacher, mset, train_idx)
    loss, distillation = schnet_search_loss(student=supernet, teacher=teacher, mode=distill)
    extra = distillation.auxiliary_parameters() if distillation is not None else []
    opt = torch.optim.Adam([*supernet.parameters(), *extra], lr=lr)
    search = NAS_ENGINES.get(engine)(
        model=supernet, loss=loss, order=order, weight_optimizer=opt, lr=lr, arch_lr=arch_lr,
        cost_weight=cost_weight if target_macs is not None else 0.0,
        reference_cost=float(teacher_cost["macs"]), cost_target=target_macs,
        total_steps=steps, extra_parameters=extra, warmup_steps=warmup_steps,
    )  # fmt: skip
    train_it = _forever(mset, w_idx, batch_size, seed)
    valid_it = _forever(mset, a_idx, batch_size, seed + 1)
    supernet.filter_grid = teacher.filter_grid = filter_grid
    t0 = time.perf_counter()
    bar = progress_bar(total=steps, desc="search", mininterval=1.0) if progress else None
    history: list[dict[str, float]] = []
    last: dict[str, float] = {}
    try:
        while True:
            if steps is not None and search.step >= steps:
                break
            if minutes is not None and time.perf_counter() - t0 > 60.0 * minutes:
                break
            last = search.train_step(next(train_it), next(valid_it))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    train=f"{last['train_loss']:.3g}", valid=f"{last['valid_loss']:.3g}"
                )
            if search.step % 100 == 0:
                history.append({**last, "genotype": search.genotype()})
    finally:
        if bar is not None:
            bar.close()
        if distillation is not None:
            distillation.close()
        supernet.filter_grid = teacher.filter_grid = 0
    seconds = time.perf_counter() - t0
    blocks = []
    for b, edge in enumerate(supernet.interactions):
        w = edge.weights().detach()
        blocks.append({
            "block": b, "chosen": edge.chosen(),
            "weights": {n: round(float(v), 4) for n, v in zip(edge.names, w, strict=True)},
            "macs": costs[edge.chosen()],
        })  # fmt: skip
    report: dict[str, Any] = {
        "engine": engine, "order": order, "distill": distill, "candidates": list(candidates),
        "target_macs": target_macs, "cost_weight": cost_weight if target_macs is not None else 0.0,
        "steps": search.step, "seconds": round(seconds, 1), "batch_size": batch_size, "lr": lr,
        "arch_lr": arch_lr, "warmup_steps": warmup_steps, "seed": seed, "blocks": blocks, "candidate_macs": costs,
        "filter_grid": filter_grid,
        "teacher": teacher_cost, "final": last, "history": history,
        "expected_macs_fraction": float(search.expected_cost().detach()) / teacher_cost["macs"],
    }  # fmt: skip
    try:
        derived = supernet.derive()
    except ValueError as err:
        report["derived"] = {"error": str(err)}
        log(f"search: {err}")
        return supernet, report
    cost = _cost(derived, mset, train_idx)
    report["derived"] = {
        "config": derived.config(), "kept_blocks": derived.derived_from, **cost,
        "macs_fraction": cost["macs"] / teacher_cost["macs"],
    }  # fmt: skip
    return supernet, report


def arch_record(report: dict[str, Any], *, teacher: str, target: dict[str, Any]) -> dict[str, Any]:
    """What ``chemprune search --out`` writes: the derived SchNet's config and the search
    (:func:`read_arch` reads it back)."""
    if "config" not in report.get("derived", {}):
        raise ValueError(report.get("derived", {}).get("error", "no derived architecture"))
    return {
        "format": ARCH_FORMAT,
        "version": 1,
        "config": report["derived"]["config"],
        "kept_blocks": report["derived"]["kept_blocks"],
        "teacher": teacher,
        "target": target,
        "search": {k: v for k, v in report.items() if k != "history"},
    }


@dataclass(frozen=True)
class ArchFile:
    """An architecture file read back (:func:`read_arch`): the derived SchNet's ``config`` (it
    builds), the teacher blocks its blocks replace (``kept_blocks``; ``None`` when not
    recorded) and the name of the target it was searched for (``None`` when not recorded)."""

    config: dict[str, Any]
    kept_blocks: tuple[int, ...] | None
    target: str | None


def read_arch(path: os.PathLike | str) -> ArchFile:
    """Read what :func:`arch_record` wrote (``chemprune search --out``), checked.

    Raises:
        ValueError: ``<path>: not a readable JSON file (...)``, ``<path>: not an architecture
            written by 'chemprune search'``, ``<path>: its config does not build a SchNet
            (...)``.
    """
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(rec, dict) or rec.get("format") != ARCH_FORMAT:
        raise ValueError(f"{path}: not an architecture written by 'chemprune search'")
    config = rec.get("config")
    try:
        SchNet.from_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its config does not build a SchNet ({err})") from None
    blocks = rec.get("kept_blocks")
    return ArchFile(
        config=config,
        kept_blocks=None if blocks is None else tuple(int(b) for b in blocks),
        target=(rec.get("target") or {}).get("name"),
    )
