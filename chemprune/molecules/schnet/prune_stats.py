"""Regression terminals: per-molecule channel activations of a SchNet, binned by the target.

The data-driven channel scores (:class:`~chemprune.engines.prune.discriminant.CDCPruner` with any
discriminant, the seed functions or an evolved expression) compare a channel's activations
between classes. A property predictor has no classes; its *regression terminals* are the same
one-vs-rest moments with the target's quantile bins as classes: for bin ``k``, ``mu_in``,
``var_in``, ``n_in`` are the channel's mean, variance and count over the molecules whose target
lies in bin ``k``, ``mu_out``... over all others. A channel whose activation follows the target
(high for the molecules with a large gap, low for those with a small one) separates the bins and
scores high; one that is the same for every molecule scores zero. So an expression evolved on
classification tasks scores SchNet kernels unchanged.

* :func:`quantile_edges` / :func:`target_bins`: equal-count bins of a target (pure functions);
* :func:`schnet_channel_features`: ``features(model, batch) -> {group: [molecules, channels]}``
  for the ``filter``, ``filter_hidden`` and ``interaction`` groups of
  :func:`~chemprune.molecules.schnet.prune_groups.schnet_groups` (a block's filter channels: its aggregated
  messages ``sum_j in2f(h_j) * W(d_ij)`` per atom; hidden units of the filter network: their
  activations per pair; atom-wise units: ``ssp(f2out(.))`` per atom; each averaged over the
  molecule's atoms or pairs);
* :func:`observe_targets`: feeds a pruner's ``observe`` with batches and their bins;
* :func:`schnet_filter_profiles`: the channel profiles
  :class:`~chemprune.engines.prune.attention.AttentionPruner` scores SchNet's filters by.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from chemprune.engines.prune.attention import ProfileFn, weight_profiles
from chemprune.engines.prune.groups import PruningGroup, Slot, get_param
from chemprune.molecules.models.graph import radius_pairs
from chemprune.molecules.models.radial import cosine_cutoff

__all__ = [
    "observe_targets",
    "quantile_edges",
    "schnet_channel_features",
    "schnet_filter_profiles",
    "target_bins",
]

#: group tag -> (module under the block, hook on its input (pre) or output, per atom or pair)
_SOURCES = {
    "filter": ("f2out", "pre", "atom"),
    "filter_hidden": ("filter_network.act", "post", "pair"),
    "interaction": ("out", "pre", "atom"),
}


def quantile_edges(values: Tensor, bins: int) -> Tensor:
    """The ``bins - 1`` inner edges that split ``values`` into bins of (nearly) equal count."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if bins < 2:
        raise ValueError(f"need at least 2 target bins, got {bins}")
    if v.numel() < bins:
        raise ValueError(f"{v.numel()} target values cannot fill {bins} bins")
    if not torch.isfinite(v).all():
        raise ValueError("the targets contain NaN or infinite values")
    q = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    return torch.quantile(v, q)


def target_bins(values: Tensor, edges: Tensor) -> Tensor:
    """The bin (0 .. ``len(edges)``) of every value: values equal to an edge go above it."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    return torch.bucketize(v, edges.to(torch.float64), right=True)


def _block_prefix(group: PruningGroup) -> str:
    m = re.match(r"(interactions\.\d+)\.", group.name)
    if not m:
        raise ValueError(f"{group.name!r} is not a group of one interaction block")
    return m.group(1)


def schnet_channel_features(
    groups: Sequence[PruningGroup],
) -> Callable[[nn.Module, object], dict[str, Tensor]]:
    """A ``features(model, batch)`` for :class:`~chemprune.engines.prune.discriminant.CDCPruner` over a
    SchNet's ``groups`` (``batch``: a :class:`~chemprune.molecules.data.batching.MoleculeBatch`)."""
    sources = []
    for g in groups:
        if not g.structured:
            raise ValueError(
                f"{g.name!r} is a weight group: data-driven scores rank channels (structured)"
            )
        tag = next((t for t in g.tags if t in _SOURCES), None)
        if tag is None:
            raise ValueError(
                f"no per-molecule activations for {g.name!r}: data-driven scores take filter, "
                f"filter_hidden or interaction groups (kernel = filter + filter_hidden)"
            )
        sources.append((g.name, f"{_block_prefix(g)}.{_SOURCES[tag][0]}", *_SOURCES[tag][1:]))

    def features(model: nn.Module, batch) -> dict[str, Tensor]:  # noqa: ANN001 - a MoleculeBatch
        n = batch.num_molecules
        pairs = radius_pairs(batch.pos, batch.batch, model.cutoff)
        owner = {"atom": batch.batch, "pair": batch.batch.index_select(0, pairs[0])}
        counts = {k: torch.bincount(v, minlength=n).clamp_min(1).unsqueeze(1)
                  for k, v in owner.items()}  # fmt: skip
        out: dict[str, Tensor] = {}
        handles = []
        for name, module, when, per in sources:

            def keep(t: Tensor, name: str = name, per: str = per) -> None:
                t = t.detach().to(torch.float64)
                s = t.new_zeros(n, t.shape[1]).index_add_(0, owner[per], t)
                out[name] = s / counts[per]

            m = model.get_submodule(module)
            if when == "pre":
                handles.append(m.register_forward_pre_hook(lambda _m, i, keep=keep: keep(i[0])))
            else:
                handles.append(m.register_forward_hook(lambda _m, _i, o, keep=keep: keep(o)))
        try:
            model(batch.z, batch.pos, batch.batch, pairs=pairs, num_molecules=n)
        finally:
            for h in handles:
                h.remove()
        return out

    return features


def observe_targets(
    pruner,  # noqa: ANN001 - a Pruner with needs_data
    model: nn.Module,
    data,  # noqa: ANN001 - a MoleculeSet with targets
    indices: np.ndarray,
    *,
    bins: int,
    batch_size: int = 64,
) -> Tensor:
    """Feed ``pruner.observe`` the molecules ``indices`` of ``data`` with their target's
    quantile bins (edges from those molecules); returns the edges."""
    if data.y is None:
        raise ValueError("data-driven channel scores need the training targets")
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    edges = quantile_edges(data.y[idx.to(data.y.device)].cpu(), bins)
    for b in data.batches(idx, batch_size):
        pruner.observe(model, b, target_bins(b.y.cpu(), edges))
    return edges


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
