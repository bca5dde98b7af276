"""The pruning engine family: *score* (which units matter), *apply* (mask them), *schedule*.

Every engine subclasses :class:`Pruner` and is registered in :data:`PRUNERS`. Engines are hooks
in the user's own training loop::

    pruner = PRUNERS.get("magnitude")(groups=weight_groups(model), sparsity=0.9)
    for step in range(steps):
        loss.backward(); pruner.regularize(model); opt.step()
        pruner.step(model, step, steps)          # re-masks when the schedule says so
    shrink(model, pruner.groups)                 # for structured groups

Sparsity is the fraction of units removed: weights for ``weight`` groups, channels for
structured ones.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from chemprune.engines.prune.groups import PruningGroup
from chemprune.engines.prune.masks import apply_masks, get_masks, group_masks
from chemprune.engines.registry import Registry

__all__ = [
    "Pruner",
    "PRUNERS",
    "register_pruner",
    "Schedule",
    "check_sparsity",
    "check_strength",
    "select_units",
]


def check_sparsity(sparsity: float, what: str = "sparsity") -> float:
    s = float(sparsity)
    if not (0.0 <= s < 1.0) or math.isnan(s):
        raise ValueError(f"{what} must be in [0, 1), got {sparsity}")
    return s


def check_strength(strength: float, what: str = "strength") -> float:
    """A regularizer's weight: a finite number >= 0."""
    s = float(strength)
    if not (s >= 0 and math.isfinite(s)):
        raise ValueError(f"{what} must be a finite number >= 0, got {strength}")
    return s


@dataclass(frozen=True)
class Schedule:
    """Target sparsity over steps: ``s_f + (s_i - s_f)(1 - t)^power`` (Zhu & Gupta 2017).

    ``power=1`` is linear, ``3`` the usual cubic ramp; ``begin``/``end`` are steps, ``every`` how
    often the masks are recomputed. ``end <= begin`` means one shot at ``begin``.
    """

    begin: int = 0
    end: int = 0
    every: int = 1
    initial: float = 0.0
    power: float = 3.0

    def __call__(self, step: int, final: float) -> float:
        if step < self.begin:
            return 0.0
        if self.end <= self.begin or step >= self.end:
            return final
        t = (step - self.begin) / (self.end - self.begin)
        return final + (self.initial - final) * (1.0 - t) ** self.power

    def due(self, step: int) -> bool:
        if step < self.begin:
            return False
        if self.end <= self.begin:
            return step == self.begin
        return step <= self.end and (step - self.begin) % max(self.every, 1) == 0


def select_units(
    scores: dict[str, Tensor],
    groups: Sequence[PruningGroup],
    sparsity: float | dict[str, float],
    *,
    scope: str = "global",
) -> dict[PruningGroup, Tensor]:
    """Keep-masks removing the lowest-scoring units.

    ``scope="global"``: one threshold over all groups (scores must be comparable);
    ``"layer"``: the same sparsity in every group; a dict gives a sparsity per group name.
    Structured groups always keep at least one unit.
    """
    by_name = {g.name: g for g in groups}
    keep: dict[PruningGroup, Tensor] = {}
    if scope == "global" and not isinstance(sparsity, dict):
        flat = torch.cat([scores[g.name].flatten() for g in groups])
        k = int(round(sparsity * flat.numel()))
        if k == 0:
            return {g: torch.ones_like(scores[g.name], dtype=torch.bool) for g in groups}
        # rank instead of thresholding so that ties still remove exactly k units
        order = torch.argsort(flat, stable=True)
        mask = torch.ones_like(flat, dtype=torch.bool)
        mask[order[:k]] = False
        start = 0
        for g in groups:
            n = scores[g.name].numel()
            keep[g] = mask[start : start + n].reshape(scores[g.name].shape)
            start += n
    elif scope in ("layer", "global"):
        for name, s in scores.items():
            g = by_name[name]
            sp = sparsity[name] if isinstance(sparsity, dict) else sparsity
            n = s.numel()
            k = int(round(check_sparsity(sp) * n))
            mask = torch.ones(n, dtype=torch.bool, device=s.device)
            if k:
                mask[torch.argsort(s.flatten(), stable=True)[:k]] = False
            keep[g] = mask.reshape(s.shape)
    else:
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    for g, m in keep.items():
        if g.structured and not bool(m.any()):
            m.view(-1)[torch.argmax(scores[g.name].flatten())] = True
    return keep


class Pruner(ABC):
    """Base class of pruning engines.

    Args:
        groups: what to prune (see :mod:`chemprune.engines.prune.groups`).
        sparsity: final fraction of units to remove, in ``[0, 1)``.
        scope: ``global`` (one threshold over all groups) or ``layer`` (same sparsity per group).
        schedule: when and how much to prune during training (default: one shot).
    """

    name: str = "base"
    #: what ``sparsity`` removes: ``"units"`` (weights or channels, masked, then ``shrink``) or
    #: ``"rank"`` (directions of each layer, projected, then the engine's ``factorize``)
    unit: str = "units"
    #: whether ``regularize`` shapes the weights during a first training phase before
    #: ``apply`` (structured sparsity, force regularisation): pipelines give it that phase
    trains_first: bool = False
    #: whether the engine scores structured (channel) groups only
    structured_only: bool = False
    #: whether ``score`` needs labelled batches through ``observe`` first (class-discriminant
    #: engines)
    needs_data: bool = False
    #: whether the engine searches under an accuracy constraint: its constructor takes
    #: ``metric`` (higher is better) and ``max_drop`` (OLMP)
    needs_metric: bool = False
    #: whether the engine scores filter groups by the distance profile of their filters
    #: (``profile_fn``, the attention engine)
    uses_profiles: bool = False
    #: whether the engine can also remove every unit whose norm fell below a threshold
    #: (``threshold(model, value)``, structured sparsity learning)
    supports_threshold: bool = False

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "global",
        schedule: Schedule | None = None,
    ) -> None:
        if not groups:
            raise ValueError("nothing to prune: no pruning groups (model without prunable layers?)")
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(
                f"duplicate group names: {sorted({n for n in names if names.count(n) > 1})}"
            )
        if scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
        self.groups = list(groups)
        self.sparsity = check_sparsity(sparsity)
        self.scope = scope
        self.schedule_ = schedule or Schedule()

    # ------------------------------------------------------------------ the three parts
    @abstractmethod
    def score(self, model: nn.Module) -> dict[str, Tensor]:
        """Importance per unit and group name (higher = keep)."""

    def apply(self, model: nn.Module, sparsity: float | None = None) -> dict[str, Tensor]:
        """Mask the lowest-scoring units so that ``sparsity`` is reached; returns the masks."""
        target = self.sparsity if sparsity is None else check_sparsity(sparsity)
        scores = self.score(model)
        keep = select_units(scores, self.groups, target, scope=self.scope)
        masks = group_masks(model, keep)
        apply_masks(model, masks)
        return masks

    def schedule(self, step: int) -> float:
        """Target sparsity at optimizer step ``step``."""
        return self.schedule_(step, self.sparsity)

    # ------------------------------------------------------------------ loop hooks
    def step(self, model: nn.Module, step: int) -> bool:
        """Call after each optimizer step; re-applies masks when the schedule is due."""
        if self.schedule_.due(step):
            self.apply(model, self.schedule(step))
            return True
        return False

    def observe(self, model: nn.Module, inputs: Tensor, labels: Tensor) -> None:  # noqa: B027
        """Feed one labelled batch to a data-driven score (no-op unless overridden)."""

    def regularize(self, model: nn.Module) -> None:  # noqa: B027 - optional hook
        """Call between ``backward()`` and ``optimizer.step()`` (no-op unless overridden)."""

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Extra trainable parameters of the engine (give them their own optimizer group)."""
        return []

    def masks(self, model: nn.Module) -> dict[str, Tensor]:
        return get_masks(model)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, groups={len(self.groups)}, "
            f"sparsity={self.sparsity}, scope={self.scope!r})"
        )


PRUNERS: Registry[Pruner] = Registry("pruning method", Pruner)
register_pruner = PRUNERS.register
