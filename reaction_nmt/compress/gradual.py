"""Gradual magnitude pruning inside a retraining round (Zhu & Gupta 2017, "To prune, or not
to prune").

A round of OLMP's masked retraining trains a fixed mask; the next search can only prune what
that training made small. Here the masks also tighten *during* the round: every ``every``
optimizer steps over the first ``ramp`` of the round, the total sparsity follows the cubic
ramp ``s_f + (s_0 - s_f)(1 - t)^3`` from where the last search left it (``s_0``) to
``target``; the rest of the round trains the final masks. Each threshold set (the grouping
strategy's) keeps its share of the kept weights, i.e. its kept fraction is scaled by the same
factor, so the allocation the search found between sets is kept; inside a set one magnitude
threshold decides, as in OLMP. The search after the round then checks the constraint and
prunes further if it allows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from chemprune.engines.prune.base import Schedule, check_sparsity
from reaction_nmt.compress.errors import CompressError

__all__ = ["GradualPruning", "GradualPlan"]


@dataclass(frozen=True)
class GradualPruning:
    """How far and how fast a retraining round prunes (see the module docstring).

    Args:
        target: total sparsity of the prunable weights at the end of the ramp.
        ramp: share of the round's steps over which the sparsity rises.
        every: optimizer steps between mask updates.
        power: exponent of the ramp (3: Zhu & Gupta's cubic).
    """

    target: float
    ramp: float = 0.75
    every: int = 25
    power: float = 3.0

    def __post_init__(self) -> None:
        try:
            check_sparsity(self.target, "gradual pruning target")
        except ValueError as e:
            raise CompressError(str(e)) from None
        if not 0.0 < self.ramp <= 1.0:
            raise CompressError(f"gradual pruning ramp must be in (0, 1], got {self.ramp}")
        if self.every < 1:
            raise CompressError(f"gradual pruning every must be >= 1 step, got {self.every}")
        if self.power <= 0:
            raise CompressError(f"gradual pruning power must be > 0, got {self.power}")

    def plan(
        self, sets: Mapping[str, Sequence[str]], masks: Mapping[str, Tensor], steps: int
    ) -> GradualPlan:
        """The mask updates of one round of ``steps`` steps over ``sets`` (set -> parameter
        names, each with its current mask in ``masks``)."""
        return GradualPlan(self, sets, masks, steps)


class GradualPlan:
    """One round's schedule: :meth:`update` tightens ``masks`` in place at the due steps."""

    def __init__(
        self,
        cfg: GradualPruning,
        sets: Mapping[str, Sequence[str]],
        masks: Mapping[str, Tensor],
        steps: int,
    ) -> None:
        missing = sorted(n for names in sets.values() for n in names if n not in masks)
        if missing:
            raise CompressError(f"gradual pruning needs masks for {missing[:3]}")
        self.cfg = cfg
        self.sets = {s: list(names) for s, names in sets.items()}
        self.masks = masks
        self.size = {s: sum(masks[n].numel() for n in names) for s, names in self.sets.items()}
        self.kept0 = {
            s: sum(int(masks[n].count_nonzero()) for n in names) for s, names in self.sets.items()
        }
        total = sum(self.size.values())
        self.initial = 1.0 - sum(self.kept0.values()) / total
        end = max(1, round(cfg.ramp * steps))
        self.schedule = Schedule(
            begin=0, end=end, every=cfg.every, initial=self.initial, power=cfg.power
        )
        self.active = cfg.target > self.initial
        self.updates = 0

    def sparsity_at(self, step: int) -> float:
        """Total sparsity the ramp asks for after ``step`` steps."""
        if not self.active:
            return self.initial
        return self.schedule(step, self.cfg.target)

    def due(self, step: int) -> bool:
        return self.active and step > 0 and (self.schedule.due(step) or step == self.schedule.end)

    @torch.no_grad()
    def update(self, params: Mapping[str, Tensor], step: int) -> bool:
        """After optimizer step ``step`` (1-based): recompute the masks if due; the caller
        zeroes the pruned weights. Masks only shrink (pruned weights are zero, the smallest)."""
        if not self.due(step):
            return False
        factor = (1.0 - self.sparsity_at(step)) / (1.0 - self.initial)
        for s, names in self.sets.items():
            keep = min(self.kept0[s], round(self.kept0[s] * factor))
            mags = torch.cat(
                [(params[n].detach().abs() * self.masks[n].to(params[n])).flatten() for n in names]
            )
            new = torch.zeros(mags.numel(), dtype=torch.bool, device=mags.device)
            if keep:
                new[torch.topk(mags.float(), keep, sorted=False).indices] = True
            start = 0
            for n in names:
                m = self.masks[n]
                m.copy_(new[start : start + m.numel()].view_as(m).to(m))
                start += m.numel()
        self.updates += 1
        return True

    def kept(self) -> float:
        """Kept fraction of the prunable weights now."""
        alive = sum(int(self.masks[n].count_nonzero()) for ns in self.sets.values() for n in ns)
        return alive / sum(self.size.values())
