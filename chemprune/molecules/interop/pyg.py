"""Import weights from PyTorch Geometric's ``SchNet`` (and build a PyG reference model).

PyG's radius graph needs ``pyg-lib`` or ``torch-cluster`` (not on PyPI for torch 2.13), so the
reference model is given chemprune's own radius graph through ``interaction_graph``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from chemprune.molecules.models.graph import full_edge_index, radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = ["RadiusGraph", "from_pyg", "pyg_state_to_chemprune", "make_pyg_schnet"]


class RadiusGraph(nn.Module):
    """PyG ``interaction_graph``: ``(pos, batch) -> (edge_index, edge_weight)``."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        edge_index = full_edge_index(radius_pairs(pos, batch, self.cutoff))
        row, col = edge_index
        return edge_index, (pos[row] - pos[col]).norm(dim=-1)


def make_pyg_schnet(**kwargs: Any) -> nn.Module:
    """A ``torch_geometric.nn.models.SchNet`` that runs without pyg-lib/torch-cluster."""
    from torch_geometric.nn.models import SchNet as PygSchNet

    cutoff = kwargs.get("cutoff", 10.0)
    kwargs.setdefault("interaction_graph", RadiusGraph(cutoff))
    return PygSchNet(**kwargs)


def pyg_state_to_chemprune(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a PyG SchNet ``state_dict`` to chemprune's names (atomref embedding -> buffer)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        if key.startswith("interactions."):
            new = (
                key.replace(".mlp.0.", ".filter_network.lin1.")
                .replace(".mlp.2.", ".filter_network.lin2.")
                .replace(".conv.lin1.", ".in2f.")
                .replace(".conv.lin2.", ".f2out.")
                .replace(".lin.", ".out.")
            )
            # CFConv.nn is the same module as InteractionBlock.mlp: drop the duplicate names.
            if ".conv.nn." in key:
                continue
        elif key == "distance_expansion.offset":
            new = "rbf.offset"
        elif key == "atomref.weight":
            new = "atomref"
            value = value.reshape(-1)
        elif key == "initial_atomref":
            continue
        out[new] = value
    return out


def pyg_widths_from_state(state: dict[str, Tensor]) -> dict[str, int]:
    """``make_pyg_schnet`` width arguments read off a PyG SchNet ``state_dict``'s shapes.

    Raises:
        ValueError: the dict is not a PyG SchNet's (names which key is missing or odd).
    """
    need = ("embedding.weight", "distance_expansion.offset", "lin1.weight", "lin2.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise ValueError(f"not a PyG SchNet state_dict: no {', '.join(missing)}")
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("interactions.")}
    if not blocks or blocks != set(range(len(blocks))):
        raise ValueError("not a PyG SchNet state_dict: no interactions.0, 1, ... entries")
    try:
        filters = state["interactions.0.mlp.2.weight"].shape[0]
    except KeyError:
        raise ValueError("not a PyG SchNet state_dict: no interactions.0.mlp.2.weight") from None
    if state["lin2.weight"].shape[0] != 1:
        raise ValueError("only single-output PyG SchNet models are supported")
    return {
        "hidden_channels": int(state["embedding.weight"].shape[1]),
        "num_filters": int(filters),
        "num_interactions": len(blocks),
        "num_gaussians": int(state["distance_expansion.offset"].numel()),
    }


def from_pyg(model: nn.Module) -> SchNet:
    """Copy a trained PyG ``SchNet`` into chemprune's :class:`SchNet` (identical outputs).

    Supported: ``readout`` 'add'/'sum' or 'mean', ``dipole=False``, optional mean/std/atomref.
    """
    name = type(model).__name__
    if name != "SchNet" or not hasattr(model, "interactions"):
        raise TypeError(f"expected a torch_geometric SchNet, got {type(model).__qualname__}")
    if getattr(model, "dipole", False):
        raise ValueError("PyG SchNet with dipole=True is not supported")
    readout = type(model.readout).__name__.lower()
    if readout.startswith("sum"):
        readout = "sum"
    elif readout.startswith("mean"):
        readout = "mean"
    else:
        raise ValueError(f"unsupported PyG readout {type(model.readout).__name__}")
    if getattr(model, "scale", None) is not None:
        raise ValueError("PyG SchNet with a scale is not supported")
    emb = model.embedding
    net = SchNet(
        hidden_channels=model.hidden_channels,
        filter_channels=model.num_filters,
        num_interactions=model.num_interactions,
        num_gaussians=model.num_gaussians,
        cutoff=model.cutoff,
        readout=readout,
        max_z=emb.num_embeddings,
        mean=0.0 if model.mean is None else float(model.mean),
        std=1.0 if model.std is None else float(model.std),
        head_channels=model.lin1.out_features,
    )
    state = pyg_state_to_chemprune(model.state_dict())
    state.setdefault("atomref", torch.zeros(emb.num_embeddings))
    state["mean"] = net.mean.clone()
    state["std"] = net.std.clone()
    net.load_state_dict(state, strict=True)
    return net
