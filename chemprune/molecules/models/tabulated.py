"""Tabulated continuous filters: a block's filter ``W(d) * fcut(d)`` as cubic Hermite pieces.

An interaction block's filter depends on one scalar, the pair distance ``d``, so it can be
evaluated once on ``K`` evenly spaced knots over ``[0, cutoff]`` and interpolated for each pair
instead of running the filter network (``G*H + H*F`` multiply-adds per pair) and the radial basis
(``G`` exponentials per pair). Each interval ``[d_k, d_k+1]`` holds the cubic that matches the
filter's values and derivatives at both ends (derivatives by forward-mode autograd), stored as
polynomial coefficients in the local coordinate ``u = (d - d_k) / h``::

    W(d) ~ c0[k] + c1[k] u + c2[k] u^2 + c3[k] u^3        (coefficients [K - 1, 4, F])

so a pair costs one fused gather-and-weighted-sum of four ``F``-rows (``embedding_bag``). The interpolant is
continuous with a continuous first derivative, so forces (autograd through ``u``) are continuous.
The interpolation error falls as ``h^4``: on the project's 5 A models 512 knots sit at the
float32 floor of the whole model's output (``chemprune tabulate`` chooses the count by measuring).

:func:`hermite_table` is differentiable in the filter network's parameters, which is what
training on a grid (:func:`grid_filters`) uses: each step evaluates the network at the knots only
and interpolates the pairs.

References:
    D. Lu et al., "DP Compress: a model compression scheme for generating efficient deep
    potential models", J. Chem. Theory Comput. 18, 5559 (2022) (the same idea with quintic
    pieces for DeePMD's embedding network).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chemprune.molecules.models.radial import cosine_cutoff

__all__ = [
    "GridSpec",
    "TabulatedFilter",
    "filter_function",
    "grid_filters",
    "hermite_table",
    "interpolate",
]


def hermite_table(
    fn: Callable[[Tensor], Tensor],
    *,
    cutoff: float,
    knots: int,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    slopes: str = "jvp",
) -> Tensor:
    """Cubic Hermite coefficients ``[knots - 1, 4, F]`` of ``fn: d [K] -> [K, F]`` on ``knots``
    even knots over ``[0, cutoff]``, differentiable in ``fn``'s parameters.

    ``slopes``: ``jvp`` takes the derivatives at the knots from one forward-mode pass (exact;
    what tabulation uses); ``central`` from central differences at +-1% of the knot spacing
    (two more evaluations; works through custom autograd functions that forward mode cannot
    see through, such as pruning gates, and is what training on a grid uses: its error,
    ~1e-5 of the filter's scale, is far below a training step's noise).
    """
    if knots < 2:
        raise ValueError(f"a table needs at least 2 knots, got {knots}")
    d = torch.linspace(0.0, float(cutoff), knots, dtype=dtype, device=device)
    h = float(cutoff) / (knots - 1)
    if slopes == "jvp":
        values, deriv = torch.func.jvp(fn, (d,), (torch.ones_like(d),))
    elif slopes == "central":
        eps = 0.01 * h
        both = fn(torch.cat((d, d - eps, d + eps)))
        values, below, above = both.split(knots)
        deriv = (above - below) / (2.0 * eps)
    else:
        raise ValueError(f"slopes must be 'jvp' or 'central', got {slopes!r}")
    y0, y1 = values[:-1], values[1:]
    m0, m1 = deriv[:-1] * h, deriv[1:] * h
    return torch.stack(
        (y0, m0, 3.0 * (y1 - y0) - 2.0 * m0 - m1, 2.0 * (y0 - y1) + m0 + m1), dim=1
    ).contiguous()


def interpolate(coeffs: Tensor, dist: Tensor, inv_spacing: float) -> Tensor:
    """``[P, F]`` values of the pieces ``coeffs [K - 1, 4, F]`` at ``dist [P]`` (knots spaced
    ``1 / inv_spacing`` from 0; distances past the last knot extrapolate its piece). The
    interval index is not differentiated; the local coordinate ``u`` is, which gives forces."""
    t = dist * inv_spacing
    k = t.detach().long().clamp(0, coeffs.size(0) - 1)
    u = t - k.to(t.dtype)
    basis = torch.stack((torch.ones_like(u), u, u * u, u * u * u), dim=-1)
    rows = k.unsqueeze(-1) * 4 + torch.arange(4, device=k.device)
    # one fused gather-and-weighted-sum of the four coefficient rows of each pair's piece
    return F.embedding_bag(
        rows, coeffs.reshape(-1, coeffs.size(-1)), per_sample_weights=basis, mode="sum"
    )


def filter_function(block: nn.Module, rbf: nn.Module, cutoff: float) -> Callable[[Tensor], Tensor]:
    """``d -> W(d) * fcut(d)`` of a ``cfconv`` or ``linear_filter`` block (``d`` in the
    block's dtype)."""
    if getattr(block, "filter_network", None) is None or block.kind == "tabulated":
        raise ValueError(f"a {block.kind} block has no filter network to tabulate")
    return lambda d: block.filters(rbf(d), cosine_cutoff(d, cutoff))


class GridSpec:
    """What a block training on a grid needs from its model: the knot count, the radial basis
    module and the cutoff (a plain object, so the basis is not registered twice)."""

    def __init__(self, knots: int, rbf: nn.Module, cutoff: float) -> None:
        self.knots = int(knots)
        self.rbf = rbf
        self.cutoff = float(cutoff)


def grid_filters(
    block: nn.Module, rbf: nn.Module, cutoff: float, knots: int, dist: Tensor
) -> Tensor:
    """``[P, F]`` filters of the pairs interpolated from the block's network evaluated at
    ``knots`` knots only (differentiable in its parameters and in ``dist``): training on a grid."""
    fn = filter_function(block, rbf, cutoff)
    table = hermite_table(
        fn, cutoff=cutoff, knots=knots, dtype=dist.dtype, device=dist.device, slopes="central"
    )
    return interpolate(table, dist, (knots - 1) / float(cutoff))


class TabulatedFilter(nn.Module):
    """A block's filter ``W(d) * fcut(d)`` tabulated on ``knots`` knots over ``[0, cutoff]``.

    ``forward(dist [P]) -> [P, F]``. The table is a buffer (``coeffs``, in the checkpoint and
    its digest); an empty one is filled by :meth:`fill` or ``load_state_dict``.
    """

    def __init__(self, *, knots: int, filter_channels: int, cutoff: float) -> None:
        super().__init__()
        if knots < 2:
            raise ValueError(f"a tabulated filter needs at least 2 knots, got {knots}")
        if filter_channels < 1:
            raise ValueError(f"filter_channels must be >= 1, got {filter_channels}")
        self.knots = int(knots)
        self.cutoff = float(cutoff)
        self.inv_spacing = (self.knots - 1) / self.cutoff
        self.register_buffer("coeffs", torch.zeros(self.knots - 1, 4, int(filter_channels)))

    @property
    def filter_channels(self) -> int:
        return self.coeffs.size(2)

    @property
    def hidden_channels(self) -> int:
        return 0

    @property
    def row_macs(self) -> int:
        """Multiply-adds per pair: the weighted sum of four coefficient rows (what
        :mod:`chemprune.engines.prune.accounting` counts for this module)."""
        return 4 * self.filter_channels

    def reset_parameters(self) -> None:
        """Nothing to initialise: the table comes from a trained filter network."""

    @torch.no_grad()
    def fill(
        self, fn: Callable[[Tensor], Tensor], dtype: torch.dtype = torch.float64
    ) -> TabulatedFilter:
        """Tabulate ``fn`` (evaluated in ``dtype``, stored in the buffer's dtype)."""
        table = hermite_table(
            fn, cutoff=self.cutoff, knots=self.knots, dtype=dtype, device=self.coeffs.device
        )
        if table.shape != self.coeffs.shape:
            raise ValueError(f"table {tuple(table.shape)} for a {tuple(self.coeffs.shape)} slot")
        self.coeffs.copy_(table)
        return self

    def forward(self, dist: Tensor) -> Tensor:
        return interpolate(self.coeffs, dist, self.inv_spacing)

    def extra_repr(self) -> str:
        return f"knots={self.knots}, filters={self.filter_channels}, cutoff={self.cutoff:g}"
