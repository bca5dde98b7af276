"""Attention-based AutoPrune: channel gates scored by attention over each channel's profile.

Plain AutoPrune gives every unit a free auxiliary scalar. Here the score of channel ``f`` is
computed by a small attention network from a *profile* of the channel:

    s_f = v^T tanh(U [phi_f / scale, log rms(phi_f)] + b) + c_f

For SchNet's continuous-filter channels the profile ``phi_f`` is the filter's response over a
grid of distances (``W_f(d_k) * fcut(d_k)``,
:func:`chemprune.molecules.schnet.prune_stats.schnet_filter_profiles`): channels whose
filter is flat, tiny or redundant across distance bins can be told apart from those that shape
the interaction. The filter network's hidden units (the other half of the kernel) are profiled
the same way, by their response over the distance grid scaled by their outgoing weights. For
any other structured group the profile is the unit's weights (:func:`weight_profiles`). The profile is computed without gradient, so the attention network
(the auxiliary parameters) learns only through the gate, with AutoPrune's weakly coupled rule
``dL/ds_f = sum(dL/dt * sgn(w)) * h'(s_f)`` and the gate regulariser, while the filter network
learns only from the task loss. Everything else (hard gates, surrogate, separate optimizer,
:meth:`apply`) is :class:`~chemprune.engines.prune.autoprune.AutoPrunePruner`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.prune.autoprune import AutoPrunePruner, _Holder
from chemprune.engines.prune.base import register_pruner
from chemprune.engines.prune.groups import PruningGroup, get_param

__all__ = ["ChannelAttention", "AttentionPruner", "ProfileFn", "weight_profiles"]

ProfileFn = Callable[[nn.Module, PruningGroup], Tensor]


@torch.no_grad()
def weight_profiles(model: nn.Module, group: PruningGroup) -> Tensor:
    """``[units, K]``: each unit's weights (first mask slot); ``[numel, 1]`` for weight groups."""
    w = get_param(model, group.mask_slots[0], original=True).detach()
    if group.kind == "weight":
        return w.reshape(-1, 1)
    slot = group.mask_slots[0]
    return w.movedim(slot.dim, 0).reshape(group.size, -1)


class ChannelAttention(nn.Module):
    """Scores ``[units]`` from profiles ``[units, K]`` (see the module docstring).

    The output layer starts at zero and the per-unit bias at ``init``, so every gate starts open
    with score ``init``.
    """

    def __init__(
        self,
        *,
        profile_size: int,
        units: int,
        hidden: int = 16,
        init: float = 0.01,
        channel_bias: bool = True,
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(profile_size + 1, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.bias = nn.Parameter(torch.full((units,), float(init)), requires_grad=channel_bias)
        if not channel_bias:
            self.out.bias.data.fill_(float(init))

    def forward(self, profiles: Tensor) -> Tensor:
        scale = profiles.pow(2).mean().sqrt().clamp_min(1e-12)
        rms = profiles.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        feats = torch.cat([profiles / scale, torch.log(rms / scale)], dim=1)
        return self.out(torch.tanh(self.proj(feats))).squeeze(-1) + self.bias


class _AttentionHolder(_Holder):
    """Computes a group's gate scores from the current profile (no module registration)."""

    def __init__(
        self,
        model: nn.Module,
        group: PruningGroup,
        attention: ChannelAttention,
        profile_fn: ProfileFn,
    ) -> None:
        self._model = model
        self.group = group
        self.attention = attention
        self.profile_fn = profile_fn

    @property
    def m(self) -> Tensor:
        scores = self.attention(self.profile_fn(self._model, self.group))
        if self.group.kind == "weight":
            ref = get_param(self._model, self.group.mask_slots[0], original=True)
            scores = scores.reshape(ref.shape)
        return scores


@register_pruner("attention")
class AttentionPruner(AutoPrunePruner):
    """AutoPrune with attention-computed gate scores (see the module docstring).

    Args:
        groups, sparsity: as for :class:`~chemprune.engines.prune.base.Pruner`.
        profile_fn: ``(model, group) -> [units, K]`` profiles (default: the units' weights; use
            :func:`chemprune.molecules.schnet.prune_stats.schnet_filter_profiles`
            for SchNet filters).
        hidden: width of the attention network.
        channel_bias: also learn a free per-unit offset ``c_f`` (on top of the attention).
        **autoprune_options: the rest of :class:`~chemprune.engines.prune.autoprune.AutoPrunePruner`'s
            keyword arguments (``scope``, ``schedule``, ``lam``, ``penalty``, ``ste``, ``alpha``,
            ``weight_grad``, ``init``, ``unit_cost``), passed on unchanged.
    """

    uses_profiles = True

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        profile_fn: ProfileFn | None = None,
        hidden: int = 16,
        channel_bias: bool = True,
        **autoprune_options: Any,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, **autoprune_options)
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.profile_fn = profile_fn or weight_profiles
        self.hidden = hidden
        self.channel_bias = channel_bias
        self.attention: dict[str, ChannelAttention] = {}

    def _make_holder(self, model: nn.Module, group: PruningGroup) -> _AttentionHolder:
        prof = self.profile_fn(model, group)
        if prof.dim() != 2 or prof.shape[0] != (group.size if group.structured else prof.shape[0]):
            raise ValueError(f"{group.name}: profiles must be [units, K], got {tuple(prof.shape)}")
        if not math.isfinite(float(prof.abs().sum())):
            raise ValueError(f"{group.name}: non-finite profiles")
        att = ChannelAttention(
            profile_size=prof.shape[1],
            units=prof.shape[0],
            hidden=self.hidden,
            init=self.init,
            channel_bias=self.channel_bias,
        ).to(device=prof.device, dtype=prof.dtype)
        self.attention[group.name] = att
        return _AttentionHolder(model, group, att, self.profile_fn)

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return [p for att in self.attention.values() for p in att.parameters() if p.requires_grad]

    def __repr__(self) -> str:
        return (
            f"AttentionPruner(groups={len(self.groups)}, hidden={self.hidden}, lam={self.lam}, "
            f"ste={self.ste!r}, alpha={self.alpha}, weight_grad={self.weight_grad!r})"
        )
