"""Structured sparsity learning (SSL): group lasso drives whole units to zero during training.

For every unit ``u`` of every group (a channel, an input feature, a filter-network hidden unit,
a whole block, or a single weight) the penalty is ``strength * sqrt(n_u)^size_weighted * ||w_u||``,
where ``w_u`` gathers the unit's slices over all of its ``mask_slots`` and ``n_u`` is their
number of entries. :meth:`SSLPruner.regularize` adds its subgradient ``strength * w_u /
||w_u||`` (zero where ``w_u = 0``) to the gradients between ``backward()`` and the optimizer
step; :meth:`SSLPruner.proximal` is the proximal step instead (``w_u <- w_u * max(0, 1 -
lr * strength / ||w_u||)``, after the optimizer step), which sets units exactly to zero.
Units are scored by their group norm; :meth:`apply` masks the lowest to reach a sparsity (the
family's contract), :meth:`threshold` masks every unit whose norm fell below a threshold (SSL's
own ending: the sparsity is learned, not asked for). ``shrink`` then removes channels, and
:func:`chemprune.molecules.schnet.prune_groups.remove_blocks` removes SchNet interaction blocks (depth).

References:
    W. Wen, C. Wu, Y. Wang, Y. Chen, H. Li, "Learning structured sparsity in deep neural
    networks", NeurIPS 2016.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.prune.base import (
    Pruner,
    Schedule,
    check_sparsity,
    check_strength,
    register_pruner,
    select_units,
)
from chemprune.engines.prune.groups import PruningGroup, get_param
from chemprune.engines.prune.masks import apply_masks, group_masks

__all__ = ["SSLPruner", "unit_norms", "group_lasso"]


def _unit_rows(model: nn.Module, group: PruningGroup, *, original: bool = True) -> list[Tensor]:
    """Each mask slot of ``group`` as a ``[units, -1]`` view of its tensor."""
    rows = []
    for slot in group.mask_slots:
        w = get_param(model, slot, original=original)
        if group.kind == "weight":
            rows.append(w.reshape(-1, 1))
        else:
            rows.append(w.movedim(slot.dim, 0).reshape(group.size, -1))
    return rows


def unit_norms(
    model: nn.Module, groups: Sequence[PruningGroup], *, original: bool = True
) -> dict[str, Tensor]:
    """L2 norm of every unit over all of its slices (differentiable; zero-safe gradient), of the
    unmasked weights (``original``) or of the effective, masked ones. ``[units]`` per group,
    weight-shaped for ``weight`` groups."""
    out = {}
    for g in groups:
        sq = sum(r.pow(2).sum(dim=1) for r in _unit_rows(model, g, original=original))
        norm = torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))
        if g.kind == "weight":
            norm = norm.reshape(get_param(model, g.mask_slots[0], original=original).shape)
        out[g.name] = norm
    return out


def _entries_per_unit(model: nn.Module, group: PruningGroup) -> int:
    return sum(r.shape[1] for r in _unit_rows(model, group))


def group_lasso(
    model: nn.Module, groups: Sequence[PruningGroup], *, size_weighted: bool = False
) -> Tensor:
    """``sum_g sum_u c_u ||w_u||`` (``c_u = sqrt(entries of u)`` if ``size_weighted``, else 1),
    for a loop that adds the penalty to its loss instead of calling ``regularize``."""
    norms = unit_norms(model, groups)
    terms = [
        (_entries_per_unit(model, g) ** 0.5 if size_weighted else 1.0) * norms[g.name].sum()
        for g in groups
    ]
    return torch.stack(terms).sum()


def _along(values: Tensor, slot, w: Tensor, kind: str) -> Tensor:
    """Per-unit ``values`` broadcast over the tensor ``w`` of ``slot``."""
    if kind == "weight":
        return values.reshape(w.shape)
    per_index = values.repeat_interleave(slot.repeat) if slot.repeat > 1 else values
    view = [1] * w.dim()
    view[slot.dim] = -1
    return per_index.reshape(view)


@register_pruner("ssl")
class SSLPruner(Pruner):
    """Structured sparsity learning (see the module docstring).

    Args:
        groups, sparsity, scope, schedule: as for :class:`~chemprune.engines.prune.base.Pruner`
            (``sparsity`` is what :meth:`apply` reaches; :meth:`threshold` ignores it).
        strength: the group-lasso weight ``lambda`` (>= 0).
        size_weighted: scale each unit's penalty by the square root of its number of entries
            (groups of different sizes then feel comparable pressure).
    """

    trains_first = True
    supports_threshold = True

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "global",
        schedule: Schedule | None = None,
        strength: float = 1e-4,
        size_weighted: bool = False,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        self.strength = check_strength(strength)
        self.size_weighted = bool(size_weighted)

    def _coefficient(self, model: nn.Module, group: PruningGroup) -> float:
        c = _entries_per_unit(model, group) ** 0.5 if self.size_weighted else 1.0
        return self.strength * c

    @torch.no_grad()
    def score(self, model: nn.Module) -> dict[str, Tensor]:
        """Group norms of the effective weights: a unit masked once scores zero."""
        return unit_norms(model, self.groups, original=False)

    @torch.no_grad()
    def regularize(self, model: nn.Module) -> None:
        """Add the group-lasso subgradient ``c * w_u / ||w_u||`` (zero for a zero unit) to the
        gradients of the groups' parameters."""
        if self.strength == 0:
            return
        for g in self.groups:
            norms = unit_norms(model, [g])[g.name].reshape(-1)
            scale = torch.where(norms > 0, 1 / norms.clamp_min(1e-30), torch.zeros_like(norms))
            scale = scale * self._coefficient(model, g)
            for slot in g.mask_slots:
                w = get_param(model, slot, original=True)
                if w.grad is None:
                    w.grad = torch.zeros_like(w)
                w.grad.add_(w * _along(scale, slot, w, g.kind))

    @torch.no_grad()
    def proximal(self, model: nn.Module, lr: float) -> None:
        """The proximal step of the group lasso (after ``optimizer.step()``): every unit shrinks
        by ``lr * c`` in norm, and one smaller than that becomes exactly zero."""
        for g in self.groups:
            norms = unit_norms(model, [g])[g.name].reshape(-1)
            step = float(lr) * self._coefficient(model, g)
            factor = (1 - step / norms.clamp_min(1e-30)).clamp_min(0)
            for slot in g.mask_slots:
                w = get_param(model, slot, original=True)
                w.mul_(_along(factor, slot, w, g.kind))

    def penalty(self, model: nn.Module) -> Tensor:
        """The group-lasso term itself (differentiable), e.g. for logging."""
        return self.strength * group_lasso(model, self.groups, size_weighted=self.size_weighted)

    @torch.no_grad()
    def threshold(self, model: nn.Module, threshold: float) -> dict[str, Tensor]:
        """Mask every unit whose group norm is at most ``threshold`` (structured groups keep at
        least their largest unit); returns the masks. The learned sparsity is what is left."""
        scores = self.score(model)
        keep = {}
        for g in self.groups:
            k = scores[g.name] > threshold
            if g.structured and not bool(k.any()) and g.kind != "block":
                k.view(-1)[torch.argmax(scores[g.name].flatten())] = True
            keep[g] = k
        masks = group_masks(model, keep)
        apply_masks(model, masks)
        return masks

    def learned_sparsity(self, model: nn.Module, threshold: float) -> dict[str, float]:
        """Fraction of each group's units at or below ``threshold`` (nothing is masked)."""
        scores = self.score(model)
        return {g.name: float((scores[g.name] <= threshold).float().mean()) for g in self.groups}

    def apply(self, model: nn.Module, sparsity: float | None = None) -> dict[str, Tensor]:
        """Mask the lowest-norm units to reach ``sparsity``. ``block`` groups (whole layers or
        SchNet blocks, one unit each) compete with each other instead: the ``round(sparsity *
        blocks)`` weakest go, and one block at least stays."""
        target = self.sparsity if sparsity is None else check_sparsity(sparsity)
        scores = self.score(model)
        blocks = [g for g in self.groups if g.kind == "block"]
        others = [g for g in self.groups if g.kind != "block"]
        keep: dict[PruningGroup, Tensor] = {}
        if others:
            picked = {g.name: scores[g.name] for g in others}
            keep.update(select_units(picked, others, target, scope=self.scope))
        if blocks:
            norms = torch.stack([scores[g.name].reshape(()) for g in blocks])
            k = min(int(round(target * len(blocks))), len(blocks) - 1)
            dead = set(torch.argsort(norms, stable=True)[:k].tolist())
            for i, g in enumerate(blocks):
                keep[g] = torch.tensor([i not in dead], device=norms.device)
        masks = group_masks(model, keep)
        apply_masks(model, masks)
        return masks

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", strength={self.strength:g})"
