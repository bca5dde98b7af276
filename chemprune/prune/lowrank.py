"""Low-rank decomposition of linear layers, for real: one ``in x out`` layer becomes two thinner
ones, ``in x r`` then ``r x out``, from the truncated SVD of its weight.

``W = U S V^T``; the first layer gets ``sqrt(S_r) V_r^T``, the second ``U_r sqrt(S_r)`` and the
bias, so the pair computes the best rank-``r`` approximation of the layer (Eckart-Young). It
saves multiply-adds only when ``r (in + out) < in * out``; :func:`decompose` leaves a layer
whole otherwise. The ranks a model holds are its :func:`low_rank_manifest` (module name ->
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

from chemprune.models.lowrank import (
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
def factorize_linear(layer: nn.Linear, rank: int) -> LowRankLinear:
    """The rank-``rank`` truncated SVD of ``layer`` as a :class:`LowRankLinear`."""
    w = layer.weight.detach().double()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:rank].sqrt()
    out = LowRankLinear(layer.in_features, layer.out_features, rank, bias=layer.bias is not None)
    out = out.to(device=layer.weight.device, dtype=layer.weight.dtype)
    out.first.weight.copy_((root[:, None] * vh[:rank]).to(layer.weight.dtype))
    out.second.weight.copy_((u[:, :rank] * root[None, :]).to(layer.weight.dtype))
    if layer.bias is not None:
        out.second.bias.copy_(layer.bias.detach())
    return out


@torch.no_grad()
def factorize_conv2d(conv: nn.Conv2d, rank: int) -> LowRankConv2d:
    """The rank-``rank`` truncated SVD of ``conv``'s filters (``[out, in k k]``) as a
    :class:`LowRankConv2d`: ``rank`` basis filters, then a 1x1 mix of them."""
    w = conv.weight.detach().double().reshape(conv.out_channels, -1)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:rank].sqrt()
    out = LowRankConv2d(conv, rank).to(device=conv.weight.device, dtype=conv.weight.dtype)
    first = (root[:, None] * vh[:rank]).reshape(out.first.weight.shape)
    out.first.weight.copy_(first.to(conv.weight.dtype))
    out.second.weight.copy_((u[:, :rank] * root[None, :]).reshape(out.second.weight.shape)
                            .to(conv.weight.dtype))  # fmt: skip
    if conv.bias is not None:
        out.second.bias.copy_(conv.bias.detach())
    return out


def _splittable(model: nn.Module) -> dict[str, nn.Module]:
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
    ``nn.Linear``, at the rank that keeps that share of its squared singular values). A layer is
    decomposed only if the rank saves multiply-adds. Returns ``{name: (full rank, rank)}`` of
    the layers replaced.
    """
    if (ranks is None) == (energy is None):
        raise ValueError("give either ranks or energy")
    linear = _splittable(model)
    if ranks is not None:
        missing = sorted(set(ranks) - set(linear))
        if missing:
            raise KeyError(f"no nn.Linear or nn.Conv2d named {missing} in {type(model).__name__}")
        chosen = dict(ranks)
    else:
        names = list(linear) if layers is None else layers
        missing = sorted(set(names) - set(linear))
        if missing:
            raise KeyError(f"no nn.Linear or nn.Conv2d named {missing} in {type(model).__name__}")
        chosen = {}
        for n in names:
            w = linear[n].weight.detach().double()
            s = torch.linalg.svdvals(w.reshape(w.shape[0], -1))
            chosen[n] = rank_for_energy(s, float(energy))
    report = {}
    for n, r in chosen.items():
        layer = linear[n]
        if not saves(layer, r):
            continue
        w = layer.weight
        report[n] = (min(w.shape[0], w[0].numel()), r)
        split = factorize_conv2d(layer, r) if isinstance(layer, nn.Conv2d) else (
            factorize_linear(layer, r))  # fmt: skip
        set_module(model, n, split)
    return report
