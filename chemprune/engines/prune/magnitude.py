"""Magnitude pruning: remove the weights (or channels) with the smallest magnitude.

Unstructured groups are scored by ``|w|``; structured groups by the mean ``|w|^p`` of each unit's
masked slices, root ``p`` (``norm=1``: L1, ``norm=2``: L2). Scores use the effective (masked)
weights, so a unit pruned once stays pruned. Global or layer-wise thresholds, one shot or
iterative through the :class:`~chemprune.engines.prune.base.Schedule`.

References:
    S. Han, J. Pool, J. Tran, W. Dally, "Learning both weights and connections for efficient
    neural networks", NeurIPS 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.prune.base import Pruner, Schedule, register_pruner
from chemprune.engines.prune.groups import PruningGroup, get_param

__all__ = ["MagnitudePruner", "RandomPruner", "magnitude_scores"]


@torch.no_grad()
def magnitude_scores(
    model: nn.Module, groups: Sequence[PruningGroup], norm: float = 1.0, *, original: bool = False
) -> dict[str, Tensor]:
    scores: dict[str, Tensor] = {}
    for g in groups:
        if g.kind == "weight":
            scores[g.name] = (
                get_param(model, g.mask_slots[0], original=original).detach().abs().clone()
            )
            continue
        total = torch.zeros(
            g.size, device=get_param(model, g.mask_slots[0], original=original).device
        )
        count = 0
        for slot in g.mask_slots:
            w = get_param(model, slot, original=original).detach()
            w = w.movedim(slot.dim, 0).reshape(g.size, -1)
            total += w.abs().pow(norm).sum(dim=1)
            count += w.shape[1]
        scores[g.name] = (total / max(count, 1)).pow(1.0 / norm)
    return scores


@register_pruner("magnitude")
class MagnitudePruner(Pruner):
    """Magnitude pruning (see the module docstring).

    Args:
        groups, sparsity, scope, schedule: as for :class:`~chemprune.engines.prune.base.Pruner`.
        norm: ``p`` of the structured score (1 or 2).
    """

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "global",
        schedule: Schedule | None = None,
        norm: float = 1.0,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        if norm <= 0:
            raise ValueError(f"norm must be positive, got {norm}")
        self.norm = float(norm)

    def score(self, model: nn.Module) -> dict[str, Tensor]:
        return magnitude_scores(model, self.groups, self.norm)


@register_pruner("random")
class RandomPruner(MagnitudePruner):
    """Random unit scores (seeded): the floor every scoring rule has to beat.

    Args:
        seed: the scores' random stream (group ``k`` draws from ``seed + k``).
    """

    def __init__(self, *, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = int(seed)

    def score(self, model: nn.Module) -> dict[str, Tensor]:
        out = {}
        for k, g in enumerate(self.groups):
            rng = torch.Generator().manual_seed(self.seed + k)
            shape = get_param(model, g.mask_slots[0]).shape if g.kind == "weight" else (g.size,)
            out[g.name] = torch.rand(shape, generator=rng)
        return out
