"""Force regularisation toward low rank, then a real low-rank decomposition.

Wen et al. (2017) treat the rows ("filters") ``w_i`` of a layer as particles on the unit sphere
that attract each other: with ``n_i = w_i / ||w_i||`` the force on ``i`` from ``j`` is ``f_ji =
n_j - n_i`` (their "L2-norm force"; ``f_ji / ||f_ji||``, the "L1-norm force", with
``force="l1"``), and only its component tangent to the sphere at ``n_i`` moves the direction, so
filter ``i`` receives ``strength * ||w_i|| * mean_{j != i} (f_ji - (f_ji . n_i) n_i)``, a step
toward the others that keeps its norm (the paper sums over ``j``; the mean makes one
``strength`` fit layers of any width: it is the paper's ``lambda`` times ``m - 1``). The update
is theirs, ``W_i <- W_i - lr (dE/dW_i - strength * force_i)`` (the ICCV 2017 poster and the
``ForceRegularize`` step of their Caffe solver, which also skips filters of norm <= 1e-4). Coordinated filters span fewer directions, so more of the layer's
energy sits in its leading singular values, and a truncated SVD at a given retained energy
keeps a lower rank. :meth:`ForcePruner.regularize` applies the force between ``backward()`` and
the optimizer step (as a gradient, so the step moves along it).

The engine's unit is the rank of each layer of its groups (``weight`` groups of linear and
convolution layers, rows = output channels): ``score`` gives the singular values, ``apply``
projects each weight onto its leading directions (``sparsity`` = the share of the rank removed,
per layer, or with ``scope="global"`` one threshold on the singular values' energy shares),
the schedule re-projects during fine-tuning, and :meth:`factorize` turns each projected layer
into two thinner ones (:mod:`chemprune.engines.prune.lowrank`), where that saves multiply-adds.

References:
    W. Wen, C. Xu, C. Wu, Y. Wang, Y. Chen, H. Li, "Coordinating filters for faster deep neural
    networks", ICCV 2017.
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
)
from chemprune.engines.prune.groups import PruningGroup, get_param
from chemprune.engines.prune.lowrank import decompose, rank_for_energy, splittable_layers

__all__ = ["ForcePruner", "force_directions", "FORCES"]

FORCES = ("l2", "l1")


def force_directions(w: Tensor, kind: str = "l2") -> Tensor:
    """``||w_i|| * mean_{j != i} (f_ji - (f_ji . n_i) n_i)`` for the rows of ``w`` (``[m, d]``),
    ``f_ji = n_j - n_i`` (``l2``, the paper's "L2-norm force") or that over ``||n_j - n_i||``
    (``l1``); rows with norm <= 1e-4 get none and exert none, as in the authors' code."""
    if kind not in FORCES:
        raise ValueError(f"force must be one of {FORCES}, got {kind!r}")
    norms = w.norm(dim=1, keepdim=True)
    alive = (norms > 1e-4).to(w.dtype)
    n = alive * w / norms.clamp_min(1e-30)
    count = alive.sum() - alive  # the other live rows
    if kind == "l2":
        # sum_{j != i} n_j - (n_j . n_i) n_i = (S - n_i) - ((S . n_i) - 1) n_i = S - (S . n_i) n_i
        total = n.sum(dim=0, keepdim=True)
        tangent = total - (n * total).sum(dim=1, keepdim=True) * n
    else:
        diff = n.unsqueeze(0) - n.unsqueeze(1)  # [i, j] = n_j - n_i
        dist = diff.norm(dim=2, keepdim=True)
        f = torch.where(dist > 1e-4, diff / dist.clamp_min(1e-30), torch.zeros_like(diff))
        f = f * alive.reshape(1, -1, 1)
        total = f.sum(dim=1)
        tangent = total - (total * n).sum(dim=1, keepdim=True) * n
    return alive * norms * tangent / count.clamp_min(1)


@register_pruner("force")
class ForcePruner(Pruner):
    """Force regularisation + low rank (see the module docstring).

    Args:
        groups: ``weight`` groups of the layers to make low-rank.
        sparsity: share of each layer's rank that :meth:`apply` removes, in ``[0, 1)``.
        scope: ``layer`` (the same share everywhere, the default) or ``global``.
        schedule: when :meth:`step` re-projects (default: once).
        strength: the force's weight ``lambda`` (>= 0).
        force: ``l2`` (``f_ji = n_j - n_i``, the default) or ``l1`` (unit length).
    """

    unit = "rank"

    trains_first = True

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "layer",
        schedule: Schedule | None = None,
        strength: float = 1e-3,
        force: str = "l2",
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        if force not in FORCES:
            raise ValueError(f"force must be one of {FORCES}, got {force!r}")
        self.force = force
        bad = [g.name for g in groups if g.kind != "weight"]
        if bad:
            raise ValueError(f"the force engine works on weight groups (layers); got {bad}")
        self.strength = check_strength(strength)
        self.ranks: dict[str, int] = {}

    def _matrix(self, model: nn.Module, group: PruningGroup) -> Tensor:
        w = get_param(model, group.mask_slots[0], original=True)
        if w.dim() < 2:
            raise ValueError(f"{group.name}: a {w.dim()}-D weight has no rank")
        return w

    @torch.no_grad()
    def score(self, model: nn.Module) -> dict[str, Tensor]:
        """Singular values of each layer's weight (rows = output channels), largest first."""
        out = {}
        for g in self.groups:
            w = self._matrix(model, g)
            out[g.name] = torch.linalg.svdvals(w.detach().reshape(w.shape[0], -1).double())
        return out

    def _ranks(self, model: nn.Module, sparsity: float) -> dict[str, int]:
        scores = self.score(model)
        if self.scope == "layer":
            return {n: max(1, len(s) - int(round(sparsity * len(s)))) for n, s in scores.items()}
        # global: one threshold on every singular value's share of its layer's energy
        shares = {n: s.pow(2) / s.pow(2).sum().clamp_min(1e-300) for n, s in scores.items()}
        flat = torch.cat(list(shares.values()))
        k = int(round(sparsity * flat.numel()))
        if k == 0:
            return {n: len(s) for n, s in scores.items()}
        cut = torch.sort(flat).values[k - 1]
        return {n: max(1, int((sh > cut).sum())) for n, sh in shares.items()}

    def ranks_for_energy(self, model: nn.Module, energy: float) -> dict[str, int]:
        """The rank per layer that keeps ``energy`` of its squared singular values."""
        return {n: rank_for_energy(s, energy) for n, s in self.score(model).items()}

    @torch.no_grad()
    def project(self, model: nn.Module, ranks: dict[str, int]) -> None:
        """Replace each weight by its best rank-``ranks[name]`` approximation, in place."""
        for g in self.groups:
            if g.name not in ranks:
                continue
            w = self._matrix(model, g)
            m = w.reshape(w.shape[0], -1).double()
            u, s, vh = torch.linalg.svd(m, full_matrices=False)
            r = ranks[g.name]
            w.copy_(((u[:, :r] * s[:r]) @ vh[:r]).reshape(w.shape).to(w.dtype))
        self.ranks = {**self.ranks, **ranks}

    def apply(self, model: nn.Module, sparsity: float | None = None) -> dict[str, int]:
        """Project every layer onto its leading directions; returns the ranks kept."""
        target = self.sparsity if sparsity is None else check_sparsity(sparsity)
        ranks = self._ranks(model, target)
        self.project(model, ranks)
        return ranks

    @torch.no_grad()
    def regularize(self, model: nn.Module) -> None:
        """Add ``-strength * force`` to each layer's gradient (the step follows the force)."""
        if self.strength == 0:
            return
        for g in self.groups:
            w = self._matrix(model, g)
            rows = w.detach().reshape(w.shape[0], -1)
            if w.grad is None:
                w.grad = torch.zeros_like(w)
            w.grad.sub_(self.strength * force_directions(rows, self.force).reshape(w.shape))

    def factorize(self, model: nn.Module) -> dict[str, tuple[int, int]]:
        """Split every linear and convolution layer at its recorded rank into two (where that
        saves work); returns ``{layer: (full rank, rank)}`` of the layers split. Groups made
        before name layers that no longer exist."""
        split = splittable_layers(model)
        ranks = {g.mask_slots[0].module: self.ranks[g.name] for g in self.groups
                 if g.name in self.ranks and g.mask_slots[0].module in split}  # fmt: skip
        return decompose(model, ranks=ranks)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", strength={self.strength:g})"
