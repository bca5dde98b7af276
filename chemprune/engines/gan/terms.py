"""The WGAN-GP family's loss terms on plain tensors: the gradient penalty, MGO-GAN's
orthogonality between generators and the content mask of distillation (used by
:mod:`chemprune.engines.gan.base` and :mod:`chemprune.engines.gan.compress`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["content_mask", "gradient_penalty", "orthogonality"]

Graphs = tuple[Tensor, Tensor]


def gradient_penalty(critic: nn.Module, real: Graphs, fake: Graphs, eps: Tensor) -> Tensor:
    """``mean_b (||grad_(x,adj) D(x_hat_b, adj_hat_b)|| - 1)^2`` at ``x_hat = eps*real +
    (1-eps)*fake`` (``eps [B]``, one weight per graph for both tensors). A critic that scores
    packs of ``m`` graphs (``B / m`` scores) gets one norm per pack, over its ``m`` graphs'
    inputs together (give the pack's members the same ``eps``)."""
    ex = eps.view(-1, 1, 1)
    ea = eps.view(-1, 1, 1, 1)
    x = (ex * real[0] + (1 - ex) * fake[0]).detach().requires_grad_(True)
    a = (ea * real[1] + (1 - ea) * fake[1]).detach().requires_grad_(True)
    score = critic(x, a)[0]
    gx, ga = torch.autograd.grad(score.sum(), (x, a), create_graph=True)
    sq = gx.flatten(1).pow(2).sum(1) + ga.flatten(1).pow(2).sum(1)
    norm = torch.sqrt(sq.view(score.shape[0], -1).sum(1) + 1e-12)
    return ((norm - 1) ** 2).mean()


def orthogonality(embeddings: Tensor, which: Tensor, num_generators: int) -> Tensor:
    """Mean over generator pairs ``i < j`` of ``cos(e_i, e_j)^2``, ``e_k`` the mean embedding
    of generator k's samples (0 for one generator, or when a generator has no sample)."""
    means = []
    for k in range(num_generators):
        sel = which == k
        if bool(sel.any()):
            means.append(embeddings[sel].mean(0))
    if len(means) < 2:
        return embeddings.new_zeros(())
    e = F.normalize(torch.stack(means), dim=1, eps=1e-8)
    cos = e @ e.T
    i, j = torch.triu_indices(len(means), len(means), offset=1)
    return (cos[i, j] ** 2).mean()


def content_mask(nodes: Tensor) -> tuple[Tensor, Tensor]:
    """The content slots of graphs with node probabilities/logits ``nodes [B, N, T]``: the atoms
    whose most likely type is not padding ``[B, N]`` and the pairs of such atoms ``[B, N, N]``
    (off the diagonal), as float masks."""
    atom = (nodes.argmax(-1) != 0).float()
    pair = atom.unsqueeze(2) * atom.unsqueeze(1)
    pair = pair * (1 - torch.eye(nodes.shape[1], device=nodes.device))
    return atom, pair
