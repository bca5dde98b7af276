"""Against mode collapse inside each generator: the pieces that make the critic see a batch
(or a pack) rather than one graph, and the generator term that rewards responding to noise.

* :class:`BatchFeatures`: MolGAN's "batch discriminator" (De Cao & Kipf 2018, the official
  code): every graph embedding through ``Linear + tanh``, the mean over the batch, through a
  second ``Linear + tanh``, tiled onto every row and concatenated before the critic's output
  layer, so the score depends on how diverse the batch is.
* :func:`pack_rows`: PacGAN (Lin et al. 2018): ``m`` consecutive graph embeddings
  concatenated into one row, so the critic judges ``m`` samples at once and a collapsed
  generator's packs (near-identical members) are easy to tell from real ones.
* :func:`mode_seeking_term`: MSGAN (Mao et al. CVPR 2019): ``mean_pairs d(z1, z2) /
  (d(G(z1), G(z2)) + eps)``, minimised, i.e. the output distance per unit of noise distance
  maximised; ``d`` is the mean absolute difference (over the noise vector; over the softmax
  node and edge tensors together for graphs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BatchFeatures", "graph_distance", "mode_seeking_term", "pack_rows"]


class BatchFeatures(nn.Module):
    """``tanh(W2 mean_b tanh(W1 e_b))`` tiled onto ``rows`` rows: ``[rows, size]``.

    Args:
        in_features: the width of the per-graph features.
        size: the width of the batch vector.
    """

    def __init__(self, in_features: int, size: int) -> None:
        super().__init__()
        if in_features < 1 or size < 1:
            raise ValueError(f"in_features and size must be >= 1, got {in_features}, {size}")
        self.per_sample = nn.Linear(in_features, size)
        self.batch = nn.Linear(size, size)
        self.size = int(size)

    def forward(self, features: Tensor, rows: int) -> Tensor:
        mean = torch.tanh(self.per_sample(features)).mean(0, keepdim=True)
        return torch.tanh(self.batch(mean)).expand(rows, self.size)


def pack_rows(features: Tensor, pack: int) -> Tensor:
    """``[B, F] -> [B / pack, pack * F]``: each row the features of ``pack`` consecutive graphs.

    Raises:
        ValueError: ``B`` is not divisible by ``pack``.
    """
    b = features.shape[0]
    if pack < 1:
        raise ValueError(f"pack must be >= 1, got {pack}")
    if b % pack:
        raise ValueError(f"a batch of {b} graphs is not divisible by the critic's pack of {pack}")
    return features.reshape(b // pack, pack * features.shape[1])


def graph_distance(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Tensor:
    """Per-sample mean absolute difference over the node and edge tensors together, ``[B]``."""
    diff = torch.cat([(a[0] - b[0]).abs().flatten(1), (a[1] - b[1]).abs().flatten(1)], dim=1)
    return diff.mean(1)


def mode_seeking_term(
    z1: Tensor,
    z2: Tensor,
    out1: tuple[Tensor, Tensor],
    out2: tuple[Tensor, Tensor],
    eps: float = 1e-5,
) -> Tensor:
    """MSGAN's term ``mean_i d(z1_i, z2_i) / (d(G(z1_i), G(z2_i)) + eps)`` for pairs of noise
    ``z [B, z_dim]`` and the generated graphs ``(nodes [B, N, T], edges [B, N, N, Y])`` (softmax
    probabilities) of each, the pair's members from the same generator. Large when the outputs
    ignore the noise; the generator minimises it."""
    dz = (z1 - z2).abs().mean(1)
    return (dz / (graph_distance(out1, out2) + eps)).mean()
