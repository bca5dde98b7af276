"""The molecular search space: a SchNet whose every interaction block is a mixed operation.

Candidates per block (names as given to :class:`SchNetSupernet`):

* ``cf<F>``: SchNet's continuous-filter convolution with ``F`` filters (filter network hidden
  width ``F`` too), e.g. ``cf16`` ... ``cf128``;
* ``linear<F>``: the cheaper convolution whose ``F`` filters are a linear map of the radial
  basis (no filter hidden layer);
* ``atomwise`` (or ``atomwise<F>``): an atom-wise MLP, no message passing;
* ``skip``: the block is skipped (its residual update is zero; the derived model has one
  block fewer);
* ``none``: DARTS' zero operation, here the block's output is zero (its update is ``-h``);
  it competes in the search and is never derived.

A block's mixed output is its residual update ``u = sum_k softmax(alpha)_k u_k``, so the
residual stream ``h_b = h_{b-1} + u_b`` and the hooks of
:class:`~chemprune.molecules.schnet.distill.SchNetDistillation` (the block-wise teacher supervision of
:mod:`chemprune.molecules.schnet.nas_distill`) see the same tensors as on an ordinary SchNet.

:meth:`SchNetSupernet.measure_costs` sets every candidate's ``cost`` to the multiply-accumulates
it performs on an example batch (counted by hooks, :func:`chemprune.engines.prune.summarize`), for the
search's cost penalty; :meth:`SchNetSupernet.derive` builds an ordinary
:class:`~chemprune.molecules.models.schnet.SchNet` (``block_kinds``, per-block widths) carrying the
supernet's trained weights of the chosen operations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.nas.mixed import MixedOp
from chemprune.engines.prune.accounting import summarize
from chemprune.molecules.models.blocks import InteractionBlock
from chemprune.molecules.models.graph import radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = ["DEFAULT_CANDIDATES", "SchNetSupernet", "SkipBlock", "NoneBlock", "parse_candidate"]

#: the issue's search space: four kernel widths, the linear-filter convolution, the atom-wise
#: MLP, skip and none
DEFAULT_CANDIDATES = ("cf16", "cf32", "cf64", "cf128", "linear64", "atomwise", "skip", "none")

_SPEC = re.compile(r"^(cf|linear|atomwise)(\d*)$")


class SkipBlock(nn.Module):
    """Skip the block: a zero residual update (parameter-free, derivable: the block goes)."""

    cost = 0.0

    def forward(self, h: Tensor, *args: Any) -> Tensor:
        return torch.zeros_like(h)


class NoneBlock(nn.Module):
    """DARTS' ``none``: the block outputs zero, i.e. its update is ``-h``; never derived."""

    is_none = True
    cost = 0.0

    def forward(self, h: Tensor, *args: Any) -> Tensor:
        return -h


def parse_candidate(spec: str, hidden_channels: int) -> tuple[str, int]:
    """``"cf64"`` -> ``("cfconv", 64)``, ``"linear32"`` -> ``("linear_filter", 32)``,
    ``"atomwise"`` -> ``("atomwise", hidden)``; ``skip`` and ``none`` -> ``(spec, 0)``."""
    if spec in ("skip", "none"):
        return spec, 0
    m = _SPEC.match(spec)
    if not m or (m.group(1) != "atomwise" and not m.group(2)):
        raise ValueError(
            f"unknown candidate operation {spec!r}: use cf<F>, linear<F>, atomwise[<F>], "
            "skip or none"
        )
    width = int(m.group(2)) if m.group(2) else hidden_channels
    if width < 1:
        raise ValueError(f"candidate {spec!r}: the width must be >= 1")
    kind = {"cf": "cfconv", "linear": "linear_filter", "atomwise": "atomwise"}[m.group(1)]
    return kind, width


class SchNetSupernet(SchNet):
    """SchNet with a :class:`MixedOp` over ``candidates`` in place of every interaction block.

    Args:
        candidates: operation names (see the module docstring), at least one derivable.
        hidden_channels, num_interactions, num_gaussians, cutoff, readout, max_z, mean, std,
            atomref, head_channels: as :class:`~chemprune.molecules.models.schnet.SchNet` (set them as the
            teacher's so the residual streams can be compared block by block).
    """

    def __init__(
        self,
        *,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        hidden_channels: int = 128,
        num_interactions: int = 6,
        num_gaussians: int = 50,
        cutoff: float = 5.0,
        readout: str = "sum",
        max_z: int = 100,
        mean: float = 0.0,
        std: float = 1.0,
        atomref: Tensor | Sequence[float] | None = None,
        head_channels: int | None = None,
    ) -> None:
        super().__init__(
            hidden_channels=hidden_channels, filter_channels=1, num_interactions=num_interactions,
            num_gaussians=num_gaussians, cutoff=cutoff, readout=readout, max_z=max_z, mean=mean,
            std=std, atomref=atomref, head_channels=head_channels,
        )  # fmt: skip
        names = list(candidates)
        if len(set(names)) != len(names):
            raise ValueError(f"candidate operations repeat: {names}")
        self.candidates = names
        specs = {n: parse_candidate(n, hidden_channels) for n in names}
        self.interactions = nn.ModuleList(
            MixedOp({n: self._op(kind, width) for n, (kind, width) in specs.items()})
            for _ in range(num_interactions)
        )
        self._specs = specs

    def _op(self, kind: str, width: int) -> nn.Module:
        if kind == "skip":
            return SkipBlock()
        if kind == "none":
            return NoneBlock()
        return InteractionBlock(
            hidden_channels=self.hidden_channels, num_gaussians=self.num_gaussians,
            filter_channels=width, interaction_channels=self.hidden_channels, kind=kind,
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {
            "candidates": list(self.candidates),
            "hidden_channels": self.hidden_channels,
            "num_interactions": len(self.interactions),
            "num_gaussians": self.num_gaussians,
            "cutoff": self.cutoff,
            "readout": self.readout,
            "max_z": self.max_z,
            "head_channels": self.lin1.out_features,
        }

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()
        for edge in getattr(self, "interactions", []):
            for op in edge.ops.values() if isinstance(edge, MixedOp) else [edge]:
                if hasattr(op, "reset_parameters"):
                    op.reset_parameters()
        for lin in (self.lin1, self.lin2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    @classmethod
    def like(cls, teacher: SchNet, **kwargs: Any) -> SchNetSupernet:
        """A supernet with the teacher's atom basis, depth, radial basis, head and
        standardisation (and its embedding and head weights as the starting point)."""
        net = cls(
            hidden_channels=teacher.hidden_channels, num_interactions=len(teacher.interactions),
            num_gaussians=teacher.num_gaussians, cutoff=teacher.cutoff, readout=teacher.readout,
            max_z=teacher.max_z, mean=float(teacher.mean), std=float(teacher.std),
            atomref=teacher.atomref.detach().clone(), head_channels=teacher.lin1.out_features,
            **kwargs,
        )  # fmt: skip
        with torch.no_grad():
            for name in ("embedding", "lin1", "lin2"):
                getattr(net, name).load_state_dict(getattr(teacher, name).state_dict())
        return net

    # ------------------------------------------------------------------ costs
    @torch.no_grad()
    def measure_costs(self, z: Tensor, pos: Tensor, batch: Tensor) -> dict[str, float]:
        """Set every candidate's ``cost`` to its multiply-accumulates on this batch (one block,
        counted by hooks); returns ``{candidate: MACs}``."""
        pairs = radius_pairs(pos, batch, self.cutoff)
        rbf, fcut = self.edge_features(pos, pairs)
        h = self.embedding(z)
        costs: dict[str, float] = {}
        for name, op in self.interactions[0].ops.items():
            if isinstance(op, InteractionBlock):
                costs[name] = float(summarize(op, lambda m: m(h, pairs, rbf, fcut))["macs"])
            else:
                costs[name] = 0.0
        for edge in self.interactions:
            for name, op in edge.ops.items():
                op.cost = costs[name]
        return costs

    # ------------------------------------------------------------------ derive
    def derived_config(self) -> tuple[dict[str, Any], list[int]]:
        """The derived SchNet's constructor arguments and the supernet blocks it keeps."""
        kept, kinds, widths = [], [], []
        for b, edge in enumerate(self.interactions):
            name = edge.chosen()
            kind, width = self._specs[name]
            if kind == "skip":
                continue
            kept.append(b)
            kinds.append(kind)
            widths.append(width)
        if not kept:
            raise ValueError(
                "every block chose 'skip': the search collapsed to a model without interactions "
                "(try darts_minus, a lower cost weight or a longer search)"
            )
        config = {
            "hidden_channels": self.hidden_channels,
            "filter_channels": widths,
            "filter_hidden_channels": [
                w if k == "cfconv" else 0 for k, w in zip(kinds, widths, strict=True)
            ],
            "interaction_channels": [self.hidden_channels] * len(kept),
            "num_interactions": len(kept),
            "num_gaussians": self.num_gaussians,
            "cutoff": self.cutoff,
            "readout": self.readout,
            "max_z": self.max_z,
            "head_channels": self.lin1.out_features,
            "block_kinds": kinds,
        }
        return config, kept

    def derive(self) -> SchNet:
        """An ordinary SchNet of the chosen operations (``skip`` blocks removed), with their
        trained weights, the supernet's embedding, head and standardisation."""
        config, kept = self.derived_config()
        model = SchNet(
            **config, mean=float(self.mean), std=float(self.std),
            atomref=self.atomref.detach().clone(),
        )  # fmt: skip
        with torch.no_grad():
            for name in ("embedding", "lin1", "lin2"):
                getattr(model, name).load_state_dict(getattr(self, name).state_dict())
            for new, b in enumerate(kept):
                model.interactions[new].load_state_dict(self.interactions[b].derive().state_dict())
        model.derived_from = kept  # which supernet (teacher) blocks the derived ones replace
        return model

    def __repr__(self) -> str:
        rows = "\n".join(
            f"  ({b}): {edge.extra_repr()}" for b, edge in enumerate(self.interactions)
        )
        return (
            f"{self.__class__.__name__}(hidden_channels={self.hidden_channels}, "
            f"num_interactions={len(self.interactions)}, candidates={self.candidates}, "
            f"params={sum(p.numel() for p in self.parameters()):,}\n{rows}\n)"
        )
