"""MolGAN's networks: an MLP generator of graphs (one or several, sharing a trunk) and a
relational-GCN critic, on plain tensors.

Graphs are dense: node features ``x [B, N, T]`` (T atom types, index 0 = padding) and
adjacency ``a [B, N, N, Y]`` (Y bond types, index 0 = no bond), one-hot for real molecules and
softmax probabilities for generated ones.

:class:`GraphGenerator` holds ``K`` first layers ``z -> h0`` (one per generator, MGAN's
parameter sharing: Hoang et al. 2018) and one shared trunk and output heads; ``K = 1`` is
MolGAN's generator (z 32, tanh layers 128-256-512). Edge logits are symmetrised and their
diagonal ignored. The widths are per layer so a pruned generator rebuilds from its config.

:class:`GraphCritic` is MolGAN's discriminator: relational graph convolutions (per bond type,
inputs concatenated with the atom types at every layer, tanh), a gated sum over atoms into a
graph embedding (tanh, signed: what the orthogonality term compares), an MLP, a scalar score;
optionally a head that tells which of ``K`` generators made a sample (MGAN's classifier, sharing
every layer but its last with the critic). Against collapse it can see the batch: the minibatch
standard deviation (``minibatch_std``), MolGAN's batch features (``batch_features``) and PacGAN's
packs of ``pack`` graphs judged together (:mod:`chemprune.engines.gan.diversity`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.gan.diversity import BatchFeatures, pack_rows

__all__ = ["GraphCritic", "GraphGenerator", "RelationalGraphConv"]


class GraphGenerator(nn.Module):
    """``K`` generators of dense molecular graphs sharing all but their first layer.

    Args:
        num_generators: K.
        z_dim: noise size.
        hidden: widths of the layers (the first is each generator's own ``z -> hidden[0]``;
            the rest are the shared trunk).
        max_atoms: N.
        atom_types: T (with padding).
        bond_types: Y (with no-bond).
        dropout: after each hidden layer.
    """

    def __init__(
        self,
        *,
        num_generators: int = 1,
        z_dim: int = 32,
        hidden: Sequence[int] = (128, 256, 512),
        max_atoms: int = 9,
        atom_types: int = 5,
        bond_types: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if num_generators < 1:
            raise ValueError(f"num_generators must be >= 1, got {num_generators}")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be positive, got {hidden}")
        if z_dim < 1 or max_atoms < 1 or atom_types < 2 or bond_types < 2:
            raise ValueError("z_dim, max_atoms >= 1 and atom_types, bond_types >= 2 are needed")
        self.num_generators, self.z_dim, self.hidden = int(num_generators), int(z_dim), hidden
        self.max_atoms, self.atom_types, self.bond_types = max_atoms, atom_types, bond_types
        self.dropout = float(dropout)
        self.first = nn.ModuleList(nn.Linear(z_dim, hidden[0]) for _ in range(num_generators))
        self.trunk = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(hidden[:-1], hidden[1:], strict=True)
        )
        self.nodes = nn.Linear(hidden[-1], max_atoms * atom_types)
        self.edges = nn.Linear(hidden[-1], max_atoms * max_atoms * bond_types)
        self.drop = nn.Dropout(dropout)

    def config(self) -> dict:
        return {
            "num_generators": self.num_generators, "z_dim": self.z_dim,
            "hidden": list(self.hidden_widths()), "max_atoms": self.max_atoms,
            "atom_types": self.atom_types, "bond_types": self.bond_types,
            "dropout": self.dropout,
        }  # fmt: skip

    def hidden_widths(self) -> list[int]:
        """The current widths (after any shrinking)."""
        return [self.first[0].out_features] + [t.out_features for t in self.trunk]

    @classmethod
    def from_config(cls, config: dict) -> GraphGenerator:
        return cls(**config)

    def forward(self, z: Tensor, which: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(nodes [B, N, T], edges [B, N, N, Y])`` for noise ``z [B, z_dim]`` and
        generator indices ``which [B]`` (long, in ``[0, K)``)."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}], got {list(z.shape)}")
        if which.shape != z.shape[:1]:
            raise ValueError(f"which must be [B] = [{z.shape[0]}], got {list(which.shape)}")
        h = z.new_zeros(z.shape[0], self.first[0].out_features)
        for k, layer in enumerate(self.first):
            sel = which == k
            if bool(sel.any()):
                h = h.index_put((sel.nonzero().flatten(),), layer(z[sel]))
        h = self.drop(torch.tanh(h))
        for layer in self.trunk:
            h = self.drop(torch.tanh(layer(h)))
        b, n = z.shape[0], self.max_atoms
        nodes = self.nodes(h).view(b, n, self.atom_types)
        edges = self.edges(h).view(b, n, n, self.bond_types)
        edges = 0.5 * (edges + edges.transpose(1, 2))
        return nodes, edges

    def macs(self) -> int:
        """Multiply-accumulates per generated graph (each sample runs one first layer)."""
        layers = [self.first[0], *self.trunk, self.nodes, self.edges]
        return sum(m.in_features * m.out_features for m in layers)

    def extra_repr(self) -> str:
        return f"K={self.num_generators}, z={self.z_dim}, widths={self.hidden_widths()}"


class RelationalGraphConv(nn.Module):
    """``h' = tanh(W_0 [h, x] + sum_y A_y W_y [h, x])`` over the bond types ``y >= 1``."""

    def __init__(self, in_features: int, out_features: int, bond_types: int) -> None:
        super().__init__()
        self.bond_types = bond_types
        self.self_loop = nn.Linear(in_features, out_features)
        self.per_bond = nn.Linear(in_features, out_features * (bond_types - 1))
        self.out_features = out_features

    def forward(self, h: Tensor, adj: Tensor) -> Tensor:
        b, n, _ = h.shape
        y = self.bond_types - 1
        msgs = self.per_bond(h).reshape(b, n * y, self.out_features)  # rows (j, y)
        # sum_{j, y >= 1} A_ijy m_jy as one batched product over the (j, y) pairs
        agg = torch.bmm(adj[..., 1:].reshape(b, n, n * y), msgs)
        return torch.tanh(self.self_loop(h) + agg)


def batch_spread(emb: Tensor) -> Tensor:
    """The minibatch-standard-deviation feature (Karras et al. 2018): the mean over features of
    the batch's standard deviation, ``[1, 1]`` (0 for a batch of one). A critic that sees it can
    tell a collapsed batch of fakes (low spread) from a real one, which pushes the generator
    towards diverse samples."""
    if emb.shape[0] < 2:
        return emb.new_zeros(1, 1)
    return torch.sqrt(emb.var(0, unbiased=False) + 1e-8).mean().view(1, 1)


class GraphCritic(nn.Module):
    """MolGAN's critic (WGAN: an unbounded score), with an optional K-way generator head.

    Returns ``(score [B / pack], generator logits [B, K] or None, graph embedding [B,
    aggregate])``.

    Args:
        atom_types, bond_types: T and Y.
        conv: the relational graph convolutions' widths.
        aggregate: the graph embedding's width.
        mlp: the widths of the MLP between the embedding and the score.
        num_generators: K for MGAN's generator head (0 or 1: none).
        minibatch_std: append the batch's spread (Karras et al. 2018) to the MLP's input.
        batch_features: the width of MolGAN's batch-feature vector, concatenated before the
            score (0: off).
        pack: PacGAN's m: the score of each ``pack`` consecutive graphs together (1: off; the
            generator head needs 1).
    """

    def __init__(
        self,
        *,
        atom_types: int = 5,
        bond_types: int = 4,
        conv: Sequence[int] = (128, 64),
        aggregate: int = 128,
        mlp: Sequence[int] = (128, 64),
        num_generators: int = 0,
        minibatch_std: bool = False,
        batch_features: int = 0,
        pack: int = 1,
    ) -> None:
        super().__init__()
        if batch_features < 0:
            raise ValueError(f"batch_features must be >= 0, got {batch_features}")
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        if pack > 1 and num_generators > 1:
            raise ValueError(
                f"the generator head (MGAN's classifier term) judges single graphs: it needs "
                f"pack 1, got pack {pack}"
            )
        self._config = {
            "atom_types": int(atom_types), "bond_types": int(bond_types),
            "conv": [int(c) for c in conv], "aggregate": int(aggregate),
            "mlp": [int(m) for m in mlp], "num_generators": int(num_generators),
            "minibatch_std": bool(minibatch_std), "batch_features": int(batch_features),
            "pack": int(pack),
        }  # fmt: skip
        self.minibatch_std = bool(minibatch_std)
        self.pack = int(pack)
        convs, width = [], 0
        for c in conv:
            convs.append(RelationalGraphConv(width + atom_types, c, bond_types))
            width = c
        self.convs = nn.ModuleList(convs)
        self.gate = nn.Linear(width + atom_types, aggregate)
        self.value = nn.Linear(width + atom_types, aggregate)
        layers, w = [], self.pack * aggregate + int(self.minibatch_std)
        for m in mlp:
            layers += [nn.Linear(w, m), nn.Tanh()]
            w = m
        self.mlp = nn.Sequential(*layers)
        self.batch_features = BatchFeatures(aggregate, batch_features) if batch_features else None
        self.score = nn.Linear(w + int(batch_features), 1)
        self.classifier = nn.Linear(w, num_generators) if num_generators > 1 else None
        self.aggregate_features = aggregate

    def config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> GraphCritic:
        return cls(**config)

    def forward(self, x: Tensor, adj: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        h = x.new_zeros(*x.shape[:2], 0)
        for conv in self.convs:
            h = conv(torch.cat([h, x], dim=-1), adj)
        hx = torch.cat([h, x], dim=-1)
        emb = torch.tanh((torch.sigmoid(self.gate(hx)) * torch.tanh(self.value(hx))).sum(1))
        feats = pack_rows(emb, self.pack)
        if self.minibatch_std:
            feats = torch.cat([feats, batch_spread(emb).expand(feats.shape[0], 1)], dim=1)
        trunk = self.mlp(feats)
        logits = self.classifier(trunk) if self.classifier is not None else None
        if self.batch_features is not None:
            trunk = torch.cat([trunk, self.batch_features(emb, trunk.shape[0])], dim=1)
        return self.score(trunk).squeeze(-1), logits, emb

    def extra_repr(self) -> str:
        c = self._config
        return (
            f"conv={c['conv']}, aggregate={c['aggregate']}, mlp={c['mlp']}, "
            f"minibatch_std={c['minibatch_std']}, batch_features={c['batch_features']}, "
            f"pack={c['pack']}"
        )
