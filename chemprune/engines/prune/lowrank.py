"""Low-rank decomposition of linear and convolution layers, for real: one ``in x out`` layer
becomes two thinner ones, ``in x r`` then ``r x out``, from the truncated SVD of its weight
(a convolution's filters as the rows of ``[out, in k k]``: ``r`` basis filters, then a 1x1 mix).

``W = U S V^T``; the first layer gets ``sqrt(S_r) V_r^T``, the second ``U_r sqrt(S_r)`` and the
bias, so the pair computes the best rank-``r`` approximation of the layer (Eckart-Young). It
saves multiply-adds only when ``r (in + out) < in * out`` (``in`` = ``in k k`` for a
convolution); :func:`decompose` leaves a layer whole otherwise. The ranks a model holds are its :func:`low_rank_manifest` (module name ->
rank), which a checkpoint records so that :func:`apply_low_rank` rebuilds the shapes.

References:
    E. Denton, W. Zaremba, J. Bruna, Y. LeCun, R. Fergus, "Exploiting linear structure within
    convolutional networks for efficient evaluation", NeurIPS 2014; W. Wen et al.,
    "Coordinating filters for faster deep neural networks", ICCV 2017.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from chemprune.engines.prune.lowrank_layers import (
    LowRankConv2d,
    LowRankLinear,
    apply_low_rank,
    low_rank_manifest,
    set_module,
)

__all__ = [
    "LowRankLinear",
    "LowRankConv2d",
    "factorize_conv2d",
    "factorize_linear",
    "rank_for_energy",
    "saves",
    "splittable_layers",
    "decompose",
    "low_rank_manifest",
    "apply_low_rank",
]


def rank_for_energy(singular_values: Tensor, energy: float) -> int:
    """Smallest ``r`` whose ``sum_{k<=r} s_k^2`` reaches ``energy`` of the total (``(0, 1]``)."""
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    s2 = singular_values.double().pow(2)
    total = float(s2.sum())
    if total == 0:
        return 1
    share = torch.cumsum(s2, 0) / total
    return min(int(torch.searchsorted(share, torch.tensor(energy - 1e-12, dtype=share.dtype))) + 1,
               len(singular_values))  # fmt: skip


def saves(layer: nn.Linear | nn.Conv2d, rank: int) -> bool:
    """Whether rank ``rank`` needs fewer multiply-adds than the whole layer (per output
    position, for a convolution: ``rank (in k^2 + out)`` against ``in k^2 out``)."""
    if isinstance(layer, nn.Conv2d):
        fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        return rank * (fan_in + layer.out_channels) < fan_in * layer.out_channels
    return rank * (layer.in_features + layer.out_features) < layer.in_features * layer.out_features


@torch.no_grad()
def _factorize(layer: nn.Linear | nn.Conv2d, split: LowRankLinear | LowRankConv2d, rank: int):
    """Fill ``split`` with the rank-``rank`` truncated SVD of ``layer``'s weight (rows = outputs)."""
    w = layer.weight.detach()
    u, s, vh = torch.linalg.svd(w.double().reshape(w.shape[0], -1), full_matrices=False)
    root = s[:rank].sqrt()
    split = split.to(device=w.device, dtype=w.dtype)
    split.first.weight.copy_((root[:, None] * vh[:rank]).reshape(split.first.weight.shape))
    split.second.weight.copy_((u[:, :rank] * root[None, :]).reshape(split.second.weight.shape))
    if layer.bias is not None:
        split.second.bias.copy_(layer.bias.detach())
    return split


def factorize_linear(layer: nn.Linear, rank: int) -> LowRankLinear:
    """The rank-``rank`` truncated SVD of ``layer`` as a :class:`LowRankLinear`."""
    split = LowRankLinear(layer.in_features, layer.out_features, rank, bias=layer.bias is not None)
    return _factorize(layer, split, rank)


def factorize_conv2d(conv: nn.Conv2d, rank: int) -> LowRankConv2d:
    """The rank-``rank`` truncated SVD of ``conv``'s filters (``[out, in k k]``) as a
    :class:`LowRankConv2d`: ``rank`` basis filters, then a 1x1 mix of them."""
    return _factorize(conv, LowRankConv2d(conv, rank), rank)


def splittable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers :func:`decompose` can split: every ``nn.Linear`` and ungrouped ``nn.Conv2d``."""
    return {n: m for n, m in model.named_modules()
            if type(m) is nn.Linear or (type(m) is nn.Conv2d and m.groups == 1)}  # fmt: skip


@torch.no_grad()
def decompose(
    model: nn.Module,
    *,
    ranks: Mapping[str, int] | None = None,
    energy: float | None = None,
    layers: list[str] | None = None,
) -> dict[str, tuple[int, int]]:
    """Replace linear and (ungrouped) 2-D convolution layers by their truncated SVD, in place.

    Give ``ranks`` (module name -> rank), or ``energy`` (each of ``layers``, default every
    splittable layer, at the rank that keeps that share of its squared singular values). A layer is
    decomposed only if the rank saves multiply-adds. Returns ``{name: (full rank, rank)}`` of
    the layers replaced.
    """
    if (ranks is None) == (energy is None):
        raise ValueError("give either ranks or energy")
    splittable = splittable_layers(model)
    names = list(ranks) if ranks is not None else list(splittable) if layers is None else layers
    missing = sorted(set(names) - set(splittable))
    if missing:
        raise KeyError(f"no nn.Linear or nn.Conv2d named {missing} in {type(model).__name__}")
    if ranks is not None:
        chosen = dict(ranks)
    else:
        chosen = {}
        for n in names:
            w = splittable[n].weight.detach().double()
            chosen[n] = rank_for_energy(torch.linalg.svdvals(w.reshape(w.shape[0], -1)), energy)
    report = {}
    for n, r in chosen.items():
        layer = splittable[n]
        if not saves(layer, r):
            continue
        w = layer.weight
        report[n] = (min(w.shape[0], w[0].numel()), r)
        split = factorize_conv2d(layer, r) if isinstance(layer, nn.Conv2d) else (
            factorize_linear(layer, r))  # fmt: skip
        set_module(model, n, split)
    return report
