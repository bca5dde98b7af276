"""Validity help without reinforcement learning: differentiable penalties on a generator's
probabilities (in the spirit of ALMGIG, Pölsterl & Wachinger 2021, which penalises valence
violations and disconnected graphs on the generator's soft output).

The graphs are dense probabilities: node types ``x [B, N, T]`` (index 0 padding) and bond
types ``a [B, N, N, Y]`` (index 0 no bond). The chemistry comes in as two vectors, so this
module stays chemistry-agnostic: ``max_valence [T]`` (the largest valence of each atom type,
0 for padding) and ``bond_order [Y]`` (the order of each bond type, 0 for no bond; 1, 2, 3 and
1.5 for single, double, triple and aromatic). Per graph:

* ``valence``: ``sum_i relu(v_i - m_i)^2`` with ``v_i = sum_{j != i} sum_y a_ijy order_y`` the
  expected valence of slot i and ``m_i = sum_t x_it max_valence_t`` its expected largest one
  (a padding slot's is 0, so bonds on it count here too);
* ``isolated``: ``sum_i r_i relu(1 - deg_i)^2 min(1, sum_{j != i} r_j)`` with ``r_i = 1 -
  x_i0`` the probability that slot i is an atom and ``deg_i = sum_{j != i} (1 - a_ij0)`` its
  expected degree: an atom with no bond, unless it is the only atom (methane is a molecule);
* ``padding_bonds``: ``sum_{i != j} (1 - a_ij0) x_i0``, bonds touching padding slots.

A valid molecule's one-hot graph scores exactly 0 on all three.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["validity_penalties"]


def validity_penalties(
    nodes: Tensor, edges: Tensor, max_valence: Tensor, bond_order: Tensor
) -> dict[str, Tensor]:
    """The three per-graph penalties ``{"valence", "isolated", "padding_bonds"}`` (each
    ``[B]``, see the module) of the probabilities ``nodes [B, N, T]`` and ``edges [B, N, N, Y]``.

    Raises:
        ValueError: the vectors do not match the graphs' T and Y.
    """
    t, y = nodes.shape[-1], edges.shape[-1]
    if max_valence.shape != (t,) or bond_order.shape != (y,):
        raise ValueError(
            f"max_valence must be [{t}] and bond_order [{y}] (the atom and bond types), got "
            f"{list(max_valence.shape)} and {list(bond_order.shape)}"
        )
    n = nodes.shape[1]
    off = 1 - torch.eye(n, dtype=nodes.dtype, device=nodes.device)
    order = (edges * bond_order.to(edges)).sum(-1) * off  # [B, N, N] expected bond order
    valence = order.sum(-1)
    allowed = (nodes * max_valence.to(nodes)).sum(-1)
    over = torch.relu(valence - allowed).pow(2).sum(-1)
    real = 1 - nodes[..., 0]
    bonded = (1 - edges[..., 0]) * off  # [B, N, N] probability of any bond
    degree = bonded.sum(-1)
    others = (real.sum(-1, keepdim=True) - real).clamp(max=1)
    isolated = (real * torch.relu(1 - degree).pow(2) * others).sum(-1)
    padding = (bonded * nodes[..., 0].unsqueeze(2)).sum((1, 2))
    return {"valence": over, "isolated": isolated, "padding_bonds": padding}
