"""SchNet's building blocks: filter networks and interaction blocks (the radial basis, cutoff and
shifted softplus live in :mod:`chemprune.molecules.models.radial` and are re-exported here).

An interaction block is a residual update ``v = block(h, pairs, rbf, fcut)`` of kind

* ``cfconv``: SchNet's continuous-filter convolution, filters from a two-layer network of the
  radial basis (``filter_network.lin1``: RBF -> hidden, ``lin2``: hidden -> F), then the
  atom-wise layers ``f2out`` and ``out``;
* ``linear_filter``: the same convolution with filters that are a linear map of the radial
  basis (``filter_network.lin2`` only, no hidden layer): cheaper per pair;
* ``atomwise``: no message passing, an atom-wise MLP ``out(ssp(f2out(ssp(in2f(h)))))``;
* ``tabulated``: the convolution with the filters ``W(d) * fcut(d)`` of a trained block read
  from a table of cubic pieces over the distance (:mod:`chemprune.molecules.models.tabulated`): no filter
  network and no radial basis per pair.

``linear_filter`` and ``atomwise`` are what architecture search (:mod:`chemprune.molecules.schnet.nas`)
derives; ``tabulated`` is what :meth:`chemprune.molecules.models.SchNet.tabulated` makes of a trained model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chemprune.engines.prune.lowrank_layers import LowRankLinear
from chemprune.molecules.models.radial import GaussianRBF, ShiftedSoftplus, cosine_cutoff
from chemprune.molecules.models.tabulated import GridSpec, TabulatedFilter, grid_filters

__all__ = [
    "BLOCK_KINDS",
    "ShiftedSoftplus",
    "GaussianRBF",
    "cosine_cutoff",
    "FilterNetwork",
    "LinearFilter",
    "InteractionBlock",
]

#: the kinds of interaction block a SchNet may hold
BLOCK_KINDS = ("cfconv", "linear_filter", "atomwise", "tabulated")


def _xavier_(lin: nn.Linear | LowRankLinear) -> None:
    if isinstance(lin, LowRankLinear):
        lin.reset_parameters()
        return
    nn.init.xavier_uniform_(lin.weight)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)


class FilterNetwork(nn.Module):
    """Filter-generating network: ``lin2(ssp(lin1(rbf)))`` with ``lin2.out_features`` channels."""

    def __init__(self, *, num_gaussians: int, hidden_channels: int, filter_channels: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(num_gaussians, hidden_channels)
        self.act = ShiftedSoftplus()
        self.lin2 = nn.Linear(hidden_channels, filter_channels)
        self.reset_parameters()

    @property
    def filter_channels(self) -> int:
        return self.lin2.out_features

    @property
    def hidden_channels(self) -> int:
        return self.lin1.out_features

    def reset_parameters(self) -> None:
        _xavier_(self.lin1)
        _xavier_(self.lin2)

    def forward(self, rbf: Tensor) -> Tensor:
        return self.lin2(self.act(self.lin1(rbf)))


class LinearFilter(nn.Module):
    """Filters that are a linear map of the radial basis: ``lin2(rbf)`` (no hidden layer).

    Keeps ``lin2`` as the name of the layer whose output rows are the filter channels, as in
    :class:`FilterNetwork`.
    """

    def __init__(self, *, num_gaussians: int, filter_channels: int) -> None:
        super().__init__()
        self.lin2 = nn.Linear(num_gaussians, filter_channels)

    @property
    def filter_channels(self) -> int:
        return self.lin2.out_features

    @property
    def hidden_channels(self) -> int:
        return 0

    def reset_parameters(self) -> None:
        _xavier_(self.lin2)

    def forward(self, rbf: Tensor) -> Tensor:
        return self.lin2(rbf)


class InteractionBlock(nn.Module):
    __jit_unused_properties__ = ["table_knots"]
    __jit_ignored_attributes__ = ["grid"]

    """One SchNet interaction: continuous-filter convolution, then an atom-wise MLP.

    ``v_i = out(ssp(f2out(sum_j in2f(h_j) * W(d_ij) * fcut(d_ij))))``; ``kind`` (one of
    :data:`BLOCK_KINDS`) picks how ``W`` is made (``cfconv``: :class:`FilterNetwork`,
    ``linear_filter``: :class:`LinearFilter`, ``tabulated``: :class:`TabulatedFilter` of
    ``table_knots`` knots over ``[0, cutoff]``, which reads ``W * fcut`` from the distance) or
    drops the convolution (``atomwise``: ``out(ssp(f2out(ssp(in2f(h)))))``, no filter network,
    ``filter_hidden_channels`` unused).
    """

    def __init__(
        self,
        *,
        hidden_channels: int,
        num_gaussians: int,
        filter_channels: int,
        filter_hidden_channels: int | None = None,
        interaction_channels: int | None = None,
        kind: str = "cfconv",
        table_knots: int = 0,
        cutoff: float | None = None,
    ) -> None:
        super().__init__()
        if kind not in BLOCK_KINDS:
            raise ValueError(f"block kind must be one of {', '.join(BLOCK_KINDS)}, got {kind!r}")
        self.kind = kind
        if filter_channels < 1:
            raise ValueError(f"filter_channels must be >= 1, got {filter_channels}")
        fh = filter_channels if filter_hidden_channels is None else filter_hidden_channels
        if fh < 1 and kind == "cfconv":
            raise ValueError(f"filter_hidden_channels must be >= 1, got {fh}")
        self.filter_network: nn.Module | None
        if kind == "cfconv":
            self.filter_network = FilterNetwork(
                num_gaussians=num_gaussians, hidden_channels=fh, filter_channels=filter_channels
            )
        elif kind == "linear_filter":
            self.filter_network = LinearFilter(
                num_gaussians=num_gaussians, filter_channels=filter_channels
            )
        elif kind == "tabulated":
            if cutoff is None:
                raise ValueError("a tabulated block needs the model's cutoff")
            self.filter_network = TabulatedFilter(
                knots=table_knots, filter_channels=filter_channels, cutoff=cutoff
            )
        else:
            self.filter_network = None
        self.in2f = nn.Linear(hidden_channels, filter_channels, bias=False)
        mid = hidden_channels if interaction_channels is None else int(interaction_channels)
        if mid < 1:
            raise ValueError(f"interaction_channels must be >= 1, got {mid}")
        self.f2out = nn.Linear(filter_channels, mid)
        self.act = ShiftedSoftplus()
        self.out = nn.Linear(mid, hidden_channels)
        #: training on a grid (set through SchNet.filter_grid): filters from the knots only
        self.grid: GridSpec | None = None
        self.reset_parameters()

    @property
    def filter_channels(self) -> int:
        return self.in2f.out_features

    @property
    def interaction_channels(self) -> int:
        return self.f2out.out_features

    def reset_parameters(self) -> None:
        if self.filter_network is not None:
            self.filter_network.reset_parameters()
        _xavier_(self.in2f)
        _xavier_(self.f2out)
        _xavier_(self.out)

    def filters(self, rbf: Tensor, fcut: Tensor) -> Tensor:
        """``[P, F]`` filters of the pairs from their radial basis, cutoff applied (the kinds
        with a filter network)."""
        return self.filter_network(rbf) * fcut.unsqueeze(-1)

    @property
    def table_knots(self) -> int:
        """Knots of a tabulated block's table (0 for the other kinds)."""
        return self.filter_network.knots if self.kind == "tabulated" else 0

    def pair_filters(self, rbf: Tensor | None, fcut: Tensor | None, dist: Tensor | None) -> Tensor:
        """``[P, F]`` filters of the pairs: from the distances for a tabulated block (and for
        the others while they train on a grid), from the radial basis and cutoff otherwise."""
        if self.kind == "tabulated":
            assert dist is not None, "a tabulated block needs the pair distances"
            return self.filter_network(dist)
        if not torch.jit.is_scripting():
            if self.grid is not None:
                assert dist is not None, "training on a grid needs the pair distances"
                g = self.grid
                return grid_filters(self, g.rbf, g.cutoff, g.knots, dist)
        assert rbf is not None and fcut is not None, "this block needs the radial basis"
        return self.filters(rbf, fcut)

    def convolve(self, h: Tensor, pairs: Tensor, w: Tensor) -> Tensor:
        """Continuous-filter convolution over unordered pairs, both directions.

        Without autograd (inference) the two ``[P, F]`` messages share one buffer, multiplied
        and summed in place: the same arithmetic in the same order (identical results), without
        allocating three fresh pair-sized tensors per block, which on a CPU cost as much as the
        arithmetic once the filters are tabulated (measured: ``benchmarks/tabulated_speed.py``).
        """
        x = self.in2f(h)
        i, j = pairs[0], pairs[1]
        if torch.is_grad_enabled():
            agg = torch.zeros_like(x)
            agg = agg.index_add(0, i, x.index_select(0, j) * w)
            return agg.index_add(0, j, x.index_select(0, i) * w)
        msg = x.index_select(0, j)
        msg.mul_(w)
        agg = torch.zeros_like(x).index_add_(0, i, msg)
        if torch.jit.is_scripting():  # (TorchScript has no out= index_select)
            msg = x.index_select(0, i)
        else:
            torch.index_select(x, 0, i, out=msg)
        msg.mul_(w)
        return agg.index_add_(0, j, msg)

    @property
    def filter_hidden_channels(self) -> int:
        return 0 if self.filter_network is None else self.filter_network.hidden_channels

    def forward(
        self,
        h: Tensor,
        pairs: Tensor,
        rbf: Tensor | None,
        fcut: Tensor | None,
        dist: Tensor | None = None,
    ) -> Tensor:
        if self.filter_network is None:  # atomwise: no message passing
            return self.out(self.act(self.f2out(self.act(self.in2f(h)))))
        agg = self.convolve(h, pairs, self.pair_filters(rbf, fcut, dist))
        return self.out(self.act(self.f2out(agg)))

    def extra_repr(self) -> str:
        kind = "" if self.kind == "cfconv" else f"kind={self.kind}, "
        if self.kind == "tabulated":
            kind += f"knots={self.table_knots}, "
        return (
            f"{kind}hidden={self.out.out_features}, filters={self.filter_channels}, "
            f"filter_hidden={self.filter_hidden_channels}, "
            f"interaction={self.interaction_channels}"
        )
