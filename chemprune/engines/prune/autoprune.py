"""AutoPrune: pruning by training auxiliary gate parameters with weakly coupled gradients.

Every unit (a weight, or a channel of a structured group) gets an auxiliary parameter ``m``; the
forward pass uses ``t = w * h(m)`` with the hard gate ``h(m) = 1[m > 0]``. The backward pass is
not the chain rule of that product (whose ``dh/dm`` is zero almost everywhere) but the paper's
weakly coupled rules:

* auxiliary parameters: ``dL/dm = sum_unit(dL/dt * sgn(w)) * h'(m)``, with ``h'`` a surrogate
  (``leaky_relu``: 1 for ``m > 0`` and ``alpha`` below, the default; ``identity``; ``sigmoid``),
  so ``m``'s update does not scale with ``|w|``;
* weights: ``dL/dw = dL/dt * h(m)`` (``weight_grad="masked"``) or ``dL/dt`` (``"straight"``,
  pruned weights keep learning);
* a sparsity regulariser on the gates only, ``lam * sum(cost_unit * h(m))``, whose gradient goes
  through the same surrogate (:meth:`AutoPrunePruner.regularize`, after ``backward()``);

and the two parameter sets are updated separately: the auxiliary parameters are not in
``model.parameters()`` but in :meth:`auxiliary_parameters`, for their own optimizer. Pruned
units can come back while ``m`` moves. Update the gates on training batches: one binary gate per
weight fits a small held-out set instead (LeNet-300-100, ``lam=1e-4``: gates updated on 5,000
held-out MNIST images gave 0.16% error on those images, 2.89% on the test set and 27.5x
compression; on training batches 1.94% test error at 37.4x; ``benchmarks/mnist_prune.py
--ap-gate-batches``, README).

The paper's gates close at ``m = 0``, so ``lam`` sets the sparsity only indirectly. With
``rank_gates=True`` each group's threshold instead follows the schedule's target: after every
step exactly that share of units, those with the lowest ``m``, is closed (ties broken by weight
magnitude), while ``m`` keeps learning by the rules above; freezing the gates at that sparsity
then changes nothing. A training loop::

    pruner = AutoPrunePruner(groups=weight_groups(model), sparsity=0.99, lam=1e-4)
    pruner.attach(model)
    w_opt = SGD(model.parameters(), ...); m_opt = Adam(pruner.auxiliary_parameters(), ...)
    for step, (x, y) in enumerate(batches):   # training batches, also for the gates
        w_opt.zero_grad(); m_opt.zero_grad()
        loss(model(x), y).backward(); pruner.regularize(model)
        w_opt.step(); m_opt.step(); pruner.step(model, step)   # never freezes the gates
    pruner.apply(model)      # freeze h(m) as masks (or pass a sparsity to rank by m)

The exact surrogate, the regulariser's form and the learning rates of the paper could not be
checked against its text here; they are options (``ste``, ``alpha``, ``penalty``, ``weight_grad``)
with the defaults above.

References:
    X. Xiao, Z. Wang, S. Rajasekaran, "AutoPrune: Automatic Network Pruning by Regularizing
    Auxiliary Parameters", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from chemprune.engines.prune.base import Pruner, Schedule, register_pruner, select_units
from chemprune.engines.prune.groups import PruningGroup, Slot, get_param
from chemprune.engines.prune.magnitude import magnitude_scores
from chemprune.engines.prune.masks import apply_masks, expand_unit_mask, group_masks

__all__ = ["AutoPrunePruner", "AuxGate", "surrogate_grad"]

STE_KINDS = ("leaky_relu", "identity", "sigmoid")


def surrogate_grad(m: Tensor, kind: str, alpha: float) -> Tensor:
    """The surrogate derivative ``h'(m)`` of the hard gate."""
    if kind == "leaky_relu":
        return torch.where(m > 0, torch.ones_like(m), torch.full_like(m, alpha))
    if kind == "identity":
        return torch.ones_like(m)
    if kind == "sigmoid":
        s = torch.sigmoid(m)
        return s * (1 - s)
    raise ValueError(f"unknown surrogate {kind!r}; use one of {STE_KINDS}")


class _WeaklyCoupledGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: Tensor, m: Tensor, ste: str, alpha: float, masked: bool) -> Tensor:
        gate = (m > 0).to(w.dtype)
        ctx.save_for_backward(w, m, gate)
        ctx.ste, ctx.alpha, ctx.masked = ste, alpha, masked
        return w * gate

    @staticmethod
    def backward(ctx, grad: Tensor):
        w, m, gate = ctx.saved_tensors
        dw = grad * gate if ctx.masked else grad
        dm = grad * torch.sign(w) * surrogate_grad(m, ctx.ste, ctx.alpha)
        return dw, dm, None, None, None


class _Holder:
    """Gives a gate its score ``m`` while keeping the auxiliary parameters out of the model's
    parameter list and state dict (a plain object, not a module). The gate is open where
    ``m > offset`` (``offset`` is 0 unless the gates close by rank, see ``rank_gates``)."""

    offset: float | Tensor = 0.0

    def __init__(self, m: nn.Parameter) -> None:
        self._m = m

    @property
    def m(self) -> Tensor:
        return self._m

    def gated(self, m: Tensor | None = None) -> Tensor:
        """The score the gate thresholds at zero: ``m - offset`` (``m`` if already computed)."""
        m = self.m if m is None else m
        return m if isinstance(self.offset, float) and self.offset == 0.0 else m - self.offset


class AuxGate(nn.Module):
    """Parametrization ``w -> w * h(m)`` with the weakly coupled backward."""

    def __init__(self, holder: _Holder, slot: Slot | None, ste: str, alpha: float, masked: bool):
        super().__init__()
        self.holder = holder
        self.slot = slot
        self.ste, self.alpha, self.masked = ste, alpha, masked

    def forward(self, x: Tensor) -> Tensor:
        m = self.holder.gated()
        if self.slot is not None:
            m = expand_unit_mask(m, self.slot, x.shape)
        return _WeaklyCoupledGate.apply(x, m, self.ste, self.alpha, self.masked)


@register_pruner("autoprune")
class AutoPrunePruner(Pruner):
    """AutoPrune (see the module docstring).

    Args:
        groups, sparsity, scope, schedule: as for :class:`~chemprune.engines.prune.base.Pruner`;
            ``sparsity`` is the goal :meth:`apply` ranks to when asked for an exact sparsity.
        lam: strength of the gate regulariser.
        penalty: ``gate`` (``lam * sum h(m)`` through the surrogate) or ``l1`` (``lam * |m|``).
        ste: surrogate derivative of the gate (``leaky_relu``, ``identity``, ``sigmoid``).
        alpha: slope of the leaky surrogate below zero.
        weight_grad: ``masked`` or ``straight`` (see the module docstring).
        init: initial value of every auxiliary parameter (> 0: all gates open).
        unit_cost: optional per-group weight of the regulariser (e.g. FLOPs per unit).
        rank_gates: close gates by rank instead of at ``m = 0`` (default False, the paper's
            rule). After each optimizer step (:meth:`step`) each group's threshold (``scope=
            "layer"``; one for all groups with ``"global"``) moves so that exactly the share of
            units the schedule asks for is closed, those with the lowest scores; the scores
            still learn by the weakly coupled rules and the regulariser. The gated model then
            already runs at the sparsity :meth:`apply` freezes.

    :meth:`step` never freezes the gates: they train until :meth:`apply`.
    """

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "global",
        schedule: Schedule | None = None,
        lam: float = 1e-4,
        penalty: str = "gate",
        ste: str = "leaky_relu",
        alpha: float = 0.1,
        weight_grad: str = "masked",
        init: float = 0.01,
        unit_cost: Mapping[str, float] | None = None,
        rank_gates: bool = False,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        if ste not in STE_KINDS:
            raise ValueError(f"unknown surrogate {ste!r}; use one of {STE_KINDS}")
        if penalty not in ("gate", "l1"):
            raise ValueError(f"penalty must be 'gate' or 'l1', got {penalty!r}")
        if weight_grad not in ("masked", "straight"):
            raise ValueError(f"weight_grad must be 'masked' or 'straight', got {weight_grad!r}")
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if init <= 0:
            raise ValueError(f"init must be > 0 so that every gate starts open, got {init}")
        self.lam, self.penalty, self.ste, self.alpha = float(lam), penalty, ste, float(alpha)
        self.weight_grad, self.init = weight_grad, float(init)
        self.rank_gates = bool(rank_gates)
        self.groups_by_name = {g.name: g for g in self.groups}
        unknown = set(unit_cost or {}) - {g.name for g in self.groups}
        if unknown:
            raise ValueError(f"unit_cost names unknown groups: {sorted(unknown)}")
        self.unit_cost = {g.name: float((unit_cost or {}).get(g.name, 1.0)) for g in self.groups}
        self.aux: dict[str, nn.Parameter] = {}
        self.holders: dict[str, _Holder] = {}
        self._attached = False

    # ------------------------------------------------------------------ gates
    def _make_holder(self, model: nn.Module, group: PruningGroup) -> _Holder:
        """The score source of one group (a free parameter per unit for AutoPrune)."""
        ref = get_param(model, group.mask_slots[0], original=True)
        shape = ref.shape if group.kind == "weight" else (group.size,)
        m = nn.Parameter(torch.full(shape, self.init, dtype=ref.dtype, device=ref.device))
        self.aux[group.name] = m
        return _Holder(m)

    def _register(self, model: nn.Module) -> None:
        for g in self.groups:
            holder = self.holders[g.name]
            for slot in g.mask_slots:
                module = model.get_submodule(slot.module) if slot.module else model
                gate = AuxGate(
                    holder,
                    None if g.kind == "weight" else slot,
                    self.ste,
                    self.alpha,
                    self.weight_grad == "masked",
                )
                parametrize.register_parametrization(module, slot.param, gate)
        self._attached = True

    def attach(self, model: nn.Module) -> list[nn.Parameter]:
        """Register the gates on ``model``; returns the auxiliary parameters."""
        if not self._attached:
            self.holders = {g.name: self._make_holder(model, g) for g in self.groups}
            self._register(model)
        return self.auxiliary_parameters()

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return list(self.aux.values())

    def gate_scores(self) -> dict[str, Tensor]:
        """Current scores ``m`` per group (detached); a gate is open where ``m > 0``."""
        with torch.no_grad():
            return {name: h.gated().detach() for name, h in self.holders.items()}

    def regularize(self, model: nn.Module) -> None:
        """Add the regulariser's gradient to the auxiliary parameters (after ``backward()``)."""
        if not self._attached or self.lam == 0:
            return
        for name, holder in self.holders.items():
            m = holder.m
            scale = self.lam * self.unit_cost[name]
            if self.penalty == "gate":
                g = scale * surrogate_grad(holder.gated(m.detach()), self.ste, self.alpha)
            else:
                g = scale * torch.sign(m.detach())
            if m.requires_grad:
                m.backward(g)

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> bool:
        """After each optimizer step: with ``rank_gates``, move the thresholds so that the
        scheduled share of units is closed; the gates keep training. Returns False (no masks
        are frozen; :meth:`apply` does that)."""
        if not self._attached or not self.rank_gates:
            return False
        target = self.schedule(step)
        # ties (Adam moves every score by the same amount at first) are broken by magnitude
        mags = magnitude_scores(model, self.groups, original=True)
        ties = {g: 1e-6 * v / (v.max() + 1e-30) for g, v in mags.items()}
        values = {n: (h.m.detach() + ties[n]).flatten() for n, h in self.holders.items()}
        sets = [[n] for n in values] if self.scope == "layer" else [list(values)]
        for names in sets:
            flat = torch.sort(torch.cat([values[n] for n in names])).values
            k = int(round(target * flat.numel()))
            if any(self.groups_by_name[n].structured for n in names):
                k = min(k, flat.numel() - 1)  # a structured group keeps one unit at least
            lo = flat[k - 1] if k > 0 else flat[0] - 1.0
            hi = flat[k] if k < flat.numel() else flat[-1] + 1.0
            cut = 0.5 * (lo + hi)  # exactly the k lowest values are at or below it
            for n in names:
                self.holders[n].offset = cut - ties[n]
        return False

    @torch.no_grad()
    def gate_sparsity(self) -> float:
        """Fraction of units whose gate is closed (``m <= 0``)."""
        scores = list(self.gate_scores().values())
        total = sum(m.numel() for m in scores)
        return sum(int((m <= 0).sum()) for m in scores) / total if total else 0.0

    def _detach(self, model: nn.Module) -> None:
        """Remove the gates, keeping the original weights."""
        for g in self.groups:
            for slot in g.mask_slots:
                module = model.get_submodule(slot.module) if slot.module else model
                if parametrize.is_parametrized(module, slot.param):
                    plist = module.parametrizations[slot.param]
                    if any(isinstance(p, AuxGate) for p in plist):
                        parametrize.remove_parametrizations(
                            module, slot.param, leave_parametrized=False
                        )
        self._attached = False

    # ------------------------------------------------------------------ Pruner interface
    @torch.no_grad()
    def score(self, model: nn.Module) -> dict[str, Tensor]:
        """Gate score per unit, ties broken by weight magnitude (before attaching: magnitude)."""
        mags = magnitude_scores(model, self.groups, original=True)
        scores = self.gate_scores() if self._attached else {}
        out = {}
        for g in self.groups:
            mag = mags[g.name]
            tie = 1e-6 * mag / (mag.max() + 1e-30)
            out[g.name] = scores.get(g.name, torch.zeros_like(mag)) + tie
        return out

    @torch.no_grad()
    def apply(self, model: nn.Module, sparsity: float | None = None) -> dict[str, Tensor]:
        """Freeze the gates into fixed masks.

        Without ``sparsity`` the learnt gates are kept as they are; with one, units are ranked
        by their gate score and exactly that fraction is removed.
        """
        if sparsity is None and self._attached:
            scores = self.gate_scores()
            keep = {}
            for g in self.groups:
                k = scores[g.name] > 0
                if g.structured and not bool(k.any()):
                    k[torch.argmax(scores[g.name])] = True
                keep[g] = k
        else:
            target = self.sparsity if sparsity is None else sparsity
            keep = select_units(self.score(model), self.groups, target, scope=self.scope)
        if self._attached:
            self._detach(model)
        masks = group_masks(model, keep)
        apply_masks(model, masks)
        return masks

    def __repr__(self) -> str:
        return (
            f"AutoPrunePruner(groups={len(self.groups)}, lam={self.lam}, penalty={self.penalty!r}, "
            f"ste={self.ste!r}, alpha={self.alpha}, weight_grad={self.weight_grad!r})"
        )
