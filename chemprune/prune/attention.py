"""Attention-based AutoPrune: channel gates scored by attention over each channel's profile.

Plain AutoPrune gives every unit a free auxiliary scalar. Here the score of channel ``f`` is
computed by a small attention network from a *profile* of the channel:

    s_f = v^T tanh(U [phi_f / scale, log rms(phi_f)] + b) + c_f

For SchNet's continuous-filter channels the profile ``phi_f`` is the filter's response over a
grid of distances (``W_f(d_k) * fcut(d_k)``, :func:`schnet_filter_profiles`): channels whose
filter is flat, tiny or redundant across distance bins can be told apart from those that shape
the interaction. The filter network's hidden units (the other half of the kernel) are profiled
the same way, by their response over the distance grid scaled by their outgoing weights. For
any other structured group the profile is the unit's weights (:func:`weight_profiles`). The profile is computed without gradient, so the attention network
(the auxiliary parameters) learns only through the gate, with AutoPrune's weakly coupled rule
``dL/ds_f = sum(dL/dt * sgn(w)) * h'(s_f)`` and the gate regulariser, while the filter network
learns only from the task loss. Everything else (hard gates, surrogate, separate optimizer,
:meth:`apply`) is :class:`~chemprune.prune.autoprune.AutoPrunePruner`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.prune.autoprune import AutoPrunePruner, _Holder
from chemprune.prune.base import register_pruner
from chemprune.prune.groups import PruningGroup, Slot, get_param

__all__ = ["ChannelAttention", "AttentionPruner", "weight_profiles", "schnet_filter_profiles"]

ProfileFn = Callable[[nn.Module, PruningGroup], Tensor]


@torch.no_grad()
def weight_profiles(model: nn.Module, group: PruningGroup) -> Tensor:
    """``[units, K]``: each unit's weights (first mask slot); ``[numel, 1]`` for weight groups."""
    w = get_param(model, group.mask_slots[0], original=True).detach()
    if group.kind == "weight":
        return w.reshape(-1, 1)
    slot = group.mask_slots[0]
    return w.movedim(slot.dim, 0).reshape(group.size, -1)


def schnet_filter_profiles(num_bins: int = 32) -> ProfileFn:
    """Profile function for SchNet kernel groups, on ``num_bins`` distances in ``(0, cutoff]``.

    * ``filter`` groups: each filter channel's values ``W_f(d) * fcut(d)``;
    * ``filter_hidden`` groups: each hidden unit's response ``ssp(lin1(rbf(d)))_u * fcut(d)``,
      times the norm of its outgoing weights (the column of ``lin2``), i.e. how much the unit
      can move the filters at each distance.

    Profiles are computed from the original (ungated) weights of the unit's own layer.
    Any other group gets :func:`weight_profiles`.
    """

    @torch.no_grad()
    def profiles(model: nn.Module, group: PruningGroup) -> Tensor:
        from chemprune.models.schnet import cosine_cutoff

        m = re.fullmatch(r"interactions\.(\d+)\.(filters|filter_hidden)", group.name)
        if m is None:
            return weight_profiles(model, group)
        p = f"interactions.{m.group(1)}.filter_network"
        # original weights throughout: a gate's score must not depend on another gate
        w1, b1, w2, b2 = (
            get_param(model, Slot(f"{p}.{layer}", param), original=True)
            for layer in ("lin1", "lin2")
            for param in ("weight", "bias")
        )
        act = model.get_submodule(p).act
        d = torch.linspace(0.0, model.cutoff, num_bins + 1, device=w1.device)[1:]
        fcut = cosine_cutoff(d, model.cutoff).unsqueeze(1)
        hidden = act(model.rbf(d) @ w1.T + b1)  # [bins, H]
        if m.group(2) == "filter_hidden":
            return (hidden * fcut * w2.norm(dim=0)).T.contiguous()  # [H, num_bins]
        return ((hidden @ w2.T + b2) * fcut).T.contiguous()  # [F, num_bins]

    return profiles


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
        groups, sparsity: as for :class:`~chemprune.prune.base.Pruner`.
        profile_fn: ``(model, group) -> [units, K]`` profiles (default: the units' weights; use
            :func:`schnet_filter_profiles` for SchNet filters).
        hidden: width of the attention network.
        channel_bias: also learn a free per-unit offset ``c_f`` (on top of the attention).
        **autoprune_options: the rest of :class:`~chemprune.prune.autoprune.AutoPrunePruner`'s
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
