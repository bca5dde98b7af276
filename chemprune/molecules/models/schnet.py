"""SchNet with addressable continuous-filter channels.

The layer layout and initialisation follow PyG's ``SchNet`` (so its weights load with identical
outputs, see :mod:`chemprune.molecules.interop.pyg`), with three differences that matter for this project:

* every interaction block has its own filter width ``F_b`` (and filter-network hidden width), so a
  pruned model is an ordinary dense model with narrower blocks;
* the filter-generating network of block ``b`` is ``interactions[b].filter_network`` with layers
  ``lin1`` (RBF -> hidden) and ``lin2`` (hidden -> F_b); the F_b filter channels are the output
  rows of ``lin2``, of ``in2f`` and the input columns of ``f2out``;
* filters depend only on the distance, so they are computed once per unordered pair ``i < j``
  and used for both message directions: half the per-edge work of a directed-edge implementation.

References:
    K. T. Schuett et al., "SchNet: A continuous-filter convolutional neural network for modeling
    quantum interactions", NeurIPS 2017.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.prune.lowrank_layers import apply_low_rank, low_rank_manifest
from chemprune.molecules.models.blocks import (
    BLOCK_KINDS,
    FilterNetwork,
    GaussianRBF,
    InteractionBlock,
    LinearFilter,
    ShiftedSoftplus,
    _xavier_,
    cosine_cutoff,
)
from chemprune.molecules.models.graph import radius_pairs
from chemprune.molecules.models.tabulated import GridSpec, filter_function

__all__ = [
    "BLOCK_KINDS",
    "LinearFilter",
    "ShiftedSoftplus",
    "GaussianRBF",
    "cosine_cutoff",
    "FilterNetwork",
    "InteractionBlock",
    "SchNet",
]


def _per_block(value: int | Sequence[int], n: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [int(value)] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} interaction blocks")
    return values


class SchNet(nn.Module):
    __jit_unused_properties__ = ["table_knots", "filter_grid"]

    """SchNet property model ``forward(z, pos, batch) -> [num_molecules]``.

    Args:
        hidden_channels: atom-basis width (the residual stream).
        filter_channels: filter width, one int for all blocks or one per block.
        filter_hidden_channels: hidden width of each filter network (defaults to the filter width).
        interaction_channels: width of each block's atom-wise layer between the convolution and
            the block output (defaults to ``hidden_channels``).
        num_interactions: number of interaction blocks.
        num_gaussians: radial basis size.
        cutoff: radius-graph and cosine-cutoff radius in Angstrom.
        readout: ``"sum"`` (extensive targets) or ``"mean"`` over the atoms of a molecule.
        max_z: size of the element embedding (largest atomic number + 1).
        mean, std: the per-atom output is ``out * std + mean`` before readout (standardisation).
        atomref: optional ``[max_z]`` per-element reference added to each atom's output.
        head_channels: width of the output MLP's hidden layer (defaults to ``hidden // 2``).
        low_rank: linear layers stored as two thinner ones (module name -> rank), as low-rank
            decomposition (:mod:`chemprune.engines.prune.lowrank`) leaves them.
        block_kinds: the kind of each interaction block (:data:`BLOCK_KINDS`; default all
            ``cfconv``), as architecture search derives them or :meth:`tabulated` makes them.
        table_knots: knots of each ``tabulated`` block's filter table (0 for the other kinds).
    """

    def __init__(
        self,
        *,
        hidden_channels: int = 128,
        filter_channels: int | Sequence[int] = 128,
        filter_hidden_channels: int | Sequence[int] | None = None,
        interaction_channels: int | Sequence[int] | None = None,
        num_interactions: int = 6,
        num_gaussians: int = 50,
        cutoff: float = 5.0,
        readout: str = "sum",
        max_z: int = 100,
        mean: float = 0.0,
        std: float = 1.0,
        atomref: Tensor | Sequence[float] | None = None,
        head_channels: int | None = None,
        low_rank: Mapping[str, int] | None = None,
        block_kinds: Sequence[str] | None = None,
        table_knots: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if readout not in ("sum", "mean"):
            raise ValueError(f"readout must be 'sum' or 'mean', got {readout!r}")
        if num_interactions < 1:
            raise ValueError(f"num_interactions must be >= 1, got {num_interactions}")
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        filters = _per_block(filter_channels, num_interactions, "filter_channels")
        fhidden = (
            list(filters)
            if filter_hidden_channels is None
            else _per_block(filter_hidden_channels, num_interactions, "filter_hidden_channels")
        )
        mids = (
            [hidden_channels] * num_interactions
            if interaction_channels is None
            else _per_block(interaction_channels, num_interactions, "interaction_channels")
        )
        kinds = ["cfconv"] * num_interactions if block_kinds is None else list(block_kinds)
        if len(kinds) != num_interactions:
            raise ValueError(
                f"block_kinds has {len(kinds)} entries for {num_interactions} interaction blocks"
            )
        knots = [0] * num_interactions
        if table_knots is not None:
            knots = _per_block(table_knots, num_interactions, "table_knots")
        self.cutoff = float(cutoff)
        self._filter_grid = 0  # see the filter_grid property
        self.readout = readout
        self.max_z = int(max_z)
        self.embedding = nn.Embedding(max_z, hidden_channels, padding_idx=0)
        self.rbf = GaussianRBF(start=0.0, stop=cutoff, num_gaussians=num_gaussians)
        self.interactions = nn.ModuleList(
            InteractionBlock(
                hidden_channels=hidden_channels,
                num_gaussians=num_gaussians,
                filter_channels=f,
                filter_hidden_channels=fh,
                interaction_channels=mid,
                kind=kind,
                table_knots=k,
                cutoff=cutoff,
            )
            for f, fh, mid, kind, k in zip(filters, fhidden, mids, kinds, knots, strict=True)
        )
        head = hidden_channels // 2 if head_channels is None else int(head_channels)
        self.lin1 = nn.Linear(hidden_channels, head)
        self.act = ShiftedSoftplus()
        self.lin2 = nn.Linear(head, 1)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        ref = torch.zeros(max_z)
        if atomref is not None:
            ref_in = torch.as_tensor(atomref, dtype=torch.float32).reshape(-1)
            if ref_in.numel() > max_z:
                raise ValueError(f"atomref has {ref_in.numel()} entries, max_z is {max_z}")
            ref[: ref_in.numel()] = ref_in
        self.register_buffer("atomref", ref)
        #: whether a block reads the radial basis (tabulated and atom-wise blocks do not)
        self.needs_basis = any(k in ("cfconv", "linear_filter") for k in kinds)
        self.reset_parameters()
        if low_rank:
            apply_low_rank(self, dict(low_rank))
            self.reset_parameters()

    # ------------------------------------------------------------------ structure
    @property
    def hidden_channels(self) -> int:
        return self.embedding.embedding_dim

    @property
    def filter_channels(self) -> list[int]:
        return [blk.filter_channels for blk in self.interactions]

    @property
    def block_kinds(self) -> list[str]:
        return [blk.kind for blk in self.interactions]

    def _mixed_kinds(self) -> bool:
        return any(k != "cfconv" for k in self.block_kinds)

    @property
    def num_gaussians(self) -> int:
        return self.rbf.num_gaussians

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this architecture (widths per block included)."""
        return {
            "hidden_channels": self.hidden_channels,
            "filter_channels": self.filter_channels,
            "filter_hidden_channels": [blk.filter_hidden_channels for blk in self.interactions],
            "interaction_channels": [blk.interaction_channels for blk in self.interactions],
            "num_interactions": len(self.interactions),
            "num_gaussians": self.num_gaussians,
            "cutoff": self.cutoff,
            "readout": self.readout,
            "max_z": self.max_z,
            "head_channels": self.lin1.out_features,
            **({"low_rank": ranks} if (ranks := low_rank_manifest(self)) else {}),
            **({"block_kinds": self.block_kinds} if self._mixed_kinds() else {}),
            **({"table_knots": self.table_knots} if any(self.table_knots) else {}),
        }

    @property
    def filter_grid(self) -> int:
        """Training on a grid: the filters of every block with a filter network (its own or
        inside a searched mixed operation) are interpolated from this many knots per call
        (:func:`chemprune.molecules.models.tabulated.grid_filters`); 0: exact, per pair. A training
        setting, not part of :meth:`config`: the model saved is the exact one."""
        return self._filter_grid

    @filter_grid.setter
    def filter_grid(self, knots: int) -> None:
        knots = int(knots)
        if knots < 0 or knots == 1:
            raise ValueError(f"filter_grid must be 0 (off) or a knot count >= 2, got {knots}")
        self._filter_grid = knots
        spec = GridSpec(knots, self.rbf, self.cutoff) if knots else None
        for m in self.modules():
            if isinstance(m, InteractionBlock):
                m.grid = spec

    @property
    def table_knots(self) -> list[int]:
        """Knots of each block's filter table (0 for blocks that are not tabulated)."""
        return [blk.table_knots for blk in self.interactions]

    @staticmethod
    def tabulated_config(config: dict[str, Any], knots: int | Sequence[int]) -> dict[str, Any]:
        """``config`` with every block that has filters (``cfconv``, ``linear_filter``,
        ``tabulated``) tabulated on ``knots`` knots (per block or one count for all)."""
        n = int(config["num_interactions"])
        counts = _per_block(knots, n, "knots")
        kinds = list(config.get("block_kinds") or ["cfconv"] * n)
        out = dict(config)
        out["block_kinds"] = ["atomwise" if k == "atomwise" else "tabulated" for k in kinds]
        out["table_knots"] = [
            0 if k == "atomwise" else c for k, c in zip(kinds, counts, strict=True)
        ]
        if any(c < 2 for k, c in zip(out["block_kinds"], out["table_knots"], strict=True)
               if k == "tabulated"):  # fmt: skip
            raise ValueError(f"a table needs at least 2 knots, got {knots}")
        out["filter_hidden_channels"] = [0] * n
        if out.get("low_rank"):  # low-rank filter layers are gone with the filter networks
            kept = {k: r for k, r in out["low_rank"].items() if ".filter_network." not in k}
            out.pop("low_rank")
            if kept:
                out["low_rank"] = kept
        return out

    @torch.no_grad()
    def tabulated(self, knots: int | Sequence[int]) -> SchNet:
        """A copy whose ``cfconv``/``linear_filter`` blocks read their filters ``W(d) * fcut(d)``
        from tables of ``knots`` knots (per block or one count for all) built in float64: the
        same model without filter networks or radial basis at inference. Blocks already
        tabulated keep their tables when their count is unchanged and are refused otherwise;
        ``atomwise`` blocks are kept.
        """
        import copy

        if any(hasattr(m, "parametrizations") for m in self.modules()):
            raise ValueError(
                "the model still carries pruning masks or gates (parametrizations): remove or "
                "shrink them first (chemprune.engines.prune.remove_masks / shrink)"
            )
        counts = _per_block(knots, len(self.interactions), "knots")
        for blk, k in zip(self.interactions, counts, strict=True):
            if blk.kind == "tabulated" and blk.table_knots != k:
                raise ValueError(
                    f"a block is already tabulated on {blk.table_knots} knots; re-tabulating it "
                    f"on {k} would interpolate an interpolation (tabulate the exact model)"
                )
        config = self.tabulated_config(self.config(), knots)
        out = SchNet(
            **config, mean=float(self.mean), std=float(self.std), atomref=self.atomref.clone()
        ).to(self.atomref.device)
        exact = copy.deepcopy(self).double()
        for b, (src, dst) in enumerate(zip(self.interactions, out.interactions, strict=True)):
            keep = {k: v for k, v in src.state_dict().items() if not k.startswith("filter_network")}
            missing = dst.load_state_dict(keep, strict=False).missing_keys
            if src.kind == "tabulated":
                dst.filter_network.load_state_dict(src.filter_network.state_dict())
            elif dst.kind == "tabulated":
                fn = filter_function(exact.interactions[b], exact.rbf, exact.cutoff)
                dst.filter_network.fill(fn, dtype=torch.float64)
            assert all(m.startswith("filter_network") for m in missing), missing
        for name in ("embedding", "lin1", "lin2"):
            getattr(out, name).load_state_dict(getattr(self, name).state_dict())
        out.train(self.training)
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SchNet:
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown SchNet config keys: {sorted(unknown)}")
        return cls(**config)

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for blk in self.interactions:
            blk.reset_parameters()
        _xavier_(self.lin1)
        _xavier_(self.lin2)

    # ------------------------------------------------------------------ forward
    def edge_features(self, pos: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
        """Radial basis ``[P, G]`` and cutoff ``[P]`` of the pairs (differentiable in ``pos``)."""
        dist = (pos.index_select(0, pairs[0]) - pos.index_select(0, pairs[1])).norm(p=2, dim=-1)
        return self.rbf(dist), cosine_cutoff(dist, self.cutoff)

    def atom_features(
        self, z: Tensor, pos: Tensor, batch: Tensor, pairs: Tensor | None = None
    ) -> Tensor:
        """Atom representations ``[N, hidden]`` after the last interaction block."""
        if pairs is None:
            pairs = radius_pairs(pos, batch, self.cutoff)
        dist = (pos.index_select(0, pairs[0]) - pos.index_select(0, pairs[1])).norm(p=2, dim=-1)
        rbf: Tensor | None = None
        fcut: Tensor | None = None
        if self.needs_basis and self._filter_grid == 0:
            rbf, fcut = self.rbf(dist), cosine_cutoff(dist, self.cutoff)
        h = self.embedding(z)
        for blk in self.interactions:
            h = h + blk(h, pairs, rbf, fcut, dist)
        return h

    def atom_outputs(self, h: Tensor, z: Tensor) -> Tensor:
        """Each atom's contribution ``[N]`` in the target's unit (head, scale, atom reference)."""
        y = self.lin2(self.act(self.lin1(h))).squeeze(-1)
        return y * self.std + self.mean + self.atomref.index_select(0, z)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        pairs: Tensor | None = None,
        num_molecules: int | None = None,
    ) -> Tensor:
        """Predict one value per molecule.

        Args:
            z: ``[N]`` atomic numbers.
            pos: ``[N, 3]`` positions in Angstrom.
            batch: ``[N]`` sorted molecule index of each atom (all zeros if omitted).
            pairs: optional precomputed ``[2, P]`` unordered pairs ``i < j`` within the cutoff.
            num_molecules: number of molecules (inferred from ``batch`` if omitted).

        Returns:
            ``[num_molecules]`` predictions in the target's unit.
        """
        batch = self.check_inputs(z, pos, batch)
        y = self.atom_outputs(self.atom_features(z, pos, batch, pairs), z)
        return self.read_out(y, batch, num_molecules)

    def check_inputs(self, z: Tensor, pos: Tensor, batch: Tensor | None) -> Tensor:
        """Raise ``ValueError`` on inputs of the wrong shape or atomic numbers outside the
        embedding; returns ``batch`` (all zeros if omitted)."""
        if batch is None:
            batch = torch.zeros_like(z)
        if z.dim() != 1 or pos.dim() != 2 or pos.size(0) != z.size(0) or pos.size(1) != 3:
            raise ValueError(
                "expected z [N], pos [N, 3], batch [N]; got z "
                + str(z.shape)
                + ", pos "
                + str(pos.shape)
            )
        if batch.shape != z.shape:
            raise ValueError("expected z [N], pos [N, 3], batch [N]; got batch " + str(batch.shape))
        if z.numel() > 0 and (int(z.min()) < 1 or int(z.max()) >= self.max_z):
            raise ValueError("atomic numbers must be in [1, " + str(self.max_z - 1) + "]")
        return batch

    def read_out(self, y: Tensor, batch: Tensor, num_molecules: int | None = None) -> Tensor:
        """Per-molecule sums (or means, by ``readout``) of the atoms' outputs ``y``."""
        if num_molecules is None:
            num_molecules = int(batch[-1]) + 1 if batch.numel() else 0
        out = y.new_zeros(num_molecules).index_add(0, batch, y)
        if self.readout == "mean":
            counts = torch.bincount(batch, minlength=num_molecules).clamp_min(1)
            out = out / counts.to(out.dtype)
        return out

    def __repr__(self) -> str:
        f = self.filter_channels
        fs = str(f[0]) if len(set(f)) == 1 else str(f)
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"filter_channels={fs}, num_interactions={len(self.interactions)}, "
            f"num_gaussians={self.num_gaussians}, cutoff={self.cutoff:g}, "
            f"readout={self.readout!r}, "
            + (f"low_rank={ranks}, " if (ranks := low_rank_manifest(self)) else "")
            + (f"block_kinds={self.block_kinds}, " if self._mixed_kinds() else "")
            + (f"table_knots={self.table_knots}, " if any(self.table_knots) else "")
            + f"params={sum(p.numel() for p in self.parameters()):,})"
        )
