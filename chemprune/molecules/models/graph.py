"""Radius graphs for batches of small molecules, without torch-cluster or pyg-lib.

Molecules are padded to ``[B, n_max, 3]`` and all pair distances are computed per molecule, so
the cost is ``O(B * n_max^2)`` whatever the batch size (QM9: n_max = 29). Pairs are selected
without gradient; distances are then recomputed from ``pos`` so that forces by autograd work.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["radius_pairs", "dense_radius_pairs", "full_edge_index", "pad_positions"]


def _counts_from_batch(batch: Tensor, num_graphs: int | None = None) -> Tensor:
    if batch.numel() == 0:
        return batch.new_zeros(0)
    if num_graphs is None:
        num_graphs = int(batch[-1]) + 1
    return torch.bincount(batch, minlength=num_graphs)


def pad_positions(pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pad atom positions to ``[B, n_max, 3]``.

    Args:
        pos: ``[N, 3]`` positions, atoms of one molecule contiguous and molecules in order.
        batch: ``[N]`` molecule index of each atom (sorted).

    Returns:
        ``(padded, valid, ptr)``: padded positions, ``[B, n_max]`` mask of real atoms and
        ``[B + 1]`` offsets of each molecule's first atom.
    """
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted: atoms of one molecule must be contiguous")
    counts = _counts_from_batch(batch)
    ptr = torch.zeros(counts.numel() + 1, dtype=torch.long, device=pos.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    n_max = int(counts.max()) if counts.numel() else 0
    local = torch.arange(pos.size(0), device=pos.device) - ptr[batch]
    padded = pos.new_zeros(counts.numel(), n_max, 3)
    padded[batch, local] = pos
    valid = torch.zeros(counts.numel(), n_max, dtype=torch.bool, device=pos.device)
    valid[batch, local] = True
    return padded, valid, ptr


def radius_pairs(pos: Tensor, batch: Tensor, cutoff: float) -> Tensor:
    """Unordered atom pairs ``i < j`` of the same molecule closer than ``cutoff``.

    Args:
        pos: ``[N, 3]`` positions in Angstrom.
        batch: ``[N]`` sorted molecule index of each atom.
        cutoff: distance cutoff in Angstrom (pairs at exactly ``cutoff`` are excluded).

    Returns:
        ``[2, P]`` long tensor of global atom indices with ``pairs[0] < pairs[1]``
        (computed from detached positions: no gradient flows through the selection).
    """
    if pos.numel() == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    padded, valid, ptr = pad_positions(pos.detach(), batch)
    dist = torch.cdist(padded, padded)
    n_max = padded.size(1)
    upper = torch.ones(n_max, n_max, dtype=torch.bool, device=pos.device).triu_(1)
    mask = (dist < cutoff) & upper & valid.unsqueeze(2) & valid.unsqueeze(1)
    idx = mask.nonzero()
    offset = ptr[idx[:, 0]]
    return torch.stack([offset + idx[:, 1], offset + idx[:, 2]])


def dense_radius_pairs(pos: Tensor, batch: Tensor, cutoff: float) -> Tensor:
    """:func:`radius_pairs` over all ``N x N`` atom pairs of the batch at once: the same pairs (up to
    rounding at exactly the cutoff, where the cosine cutoff is zero) in the same order, with no data-dependent Python branch or size, so ``torch.export`` can trace
    it for any number of atoms. Memory and time are ``O(N^2)`` in the batch's atoms (fine for a
    molecule or a few dozen; :func:`radius_pairs` is for training batches)."""
    p = pos.detach()
    d2 = ((p.unsqueeze(1) - p.unsqueeze(0)) ** 2).sum(-1)
    idx = torch.arange(pos.size(0), device=pos.device)
    mask = (batch.unsqueeze(1) == batch.unsqueeze(0)) & (idx.unsqueeze(1) < idx.unsqueeze(0))
    mask = mask & (d2 < cutoff * cutoff)
    return mask.nonzero().t()


def full_edge_index(pairs: Tensor) -> Tensor:
    """Directed edges (both directions) from unordered pairs, as PyG's ``edge_index``.

    Edge ``(j -> i)`` is stored as ``edge_index[:, e] = (j, i)`` (source, target).
    """
    return torch.cat([pairs, pairs.flip(0)], dim=1)
