"""schnetpack 2.1.1 interop: build its SchNet, feed it chemprune batches, import its weights.

schnetpack 2.1.1 does not import under torch >= 2.6 (``T_co`` moved to ``_T_co``), so it is
imported only through :func:`import_schnetpack`, which patches that name back once. The import
takes a few seconds (schnetpack pulls in pytorch-lightning).

Two ways to give schnetpack a batch of molecules:

* :func:`schnetpack_inputs` turns tensors ``(z, pos, batch)`` into schnetpack's input dict, with
  the neighbour list from :func:`chemprune.molecules.models.graph.radius_pairs` (both directions, zero
  offsets): the same graph chemprune and the PyG reference use;
* :class:`SchnetpackMolecules` + :func:`schnetpack_transforms` + :func:`schnetpack_collate` are
  the path of a schnetpack user: one property dict per molecule (as ``ASEAtomsData`` reads it),
  a per-sample neighbour-list transform and ``_atoms_collate_fn``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from chemprune.molecules.models.graph import radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = [
    "import_schnetpack",
    "make_schnetpack_schnet",
    "schnetpack_inputs",
    "SchnetpackMolecules",
    "schnetpack_transforms",
    "schnetpack_collate",
    "from_schnetpack",
]

_INSTALL_HINT = (
    "schnetpack is not installed; install it with "
    "`pip install --no-deps -r requirements/nodeps.txt` and the 'interop' extra "
    "(pip install -e '.[interop]')"
)


def import_schnetpack() -> ModuleType:
    """Import and return ``schnetpack``, patching ``torch.utils.data.dataloader.T_co`` first."""
    import torch.utils.data.dataloader as dl

    if not hasattr(dl, "T_co") and hasattr(dl, "_T_co"):
        dl.T_co = dl._T_co  # removed from torch's public names in 2.6; schnetpack imports it
    try:
        import schnetpack
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} ({err})") from err
    return schnetpack


def make_schnetpack_schnet(
    *,
    n_atom_basis: int = 128,
    n_interactions: int = 6,
    n_rbf: int = 50,
    cutoff: float = 5.0,
    n_filters: int | None = None,
    aggregation: str = "sum",
    head_activation: str = "ssp",
    output_key: str = "y",
) -> nn.Module:
    """schnetpack ``NeuralNetworkPotential``: distances -> SchNet -> ``Atomwise`` (one output).

    ``head_activation="ssp"`` gives the output MLP the shifted softplus of the SchNet paper (as
    PyG and chemprune have); schnetpack's own ``Atomwise`` default is ``"silu"``. The prediction
    is ``model(inputs)[output_key]``, shape ``[num_molecules]``.
    """
    spk = import_schnetpack()
    if head_activation == "ssp":
        act = spk.nn.activations.shifted_softplus
    elif head_activation == "silu":
        act = torch.nn.functional.silu
    else:
        raise ValueError(f"head_activation must be 'ssp' or 'silu', got {head_activation!r}")
    representation = spk.representation.SchNet(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
        n_filters=n_filters,
    )
    head = spk.atomistic.Atomwise(
        n_in=n_atom_basis, activation=act, aggregation_mode=aggregation, output_key=output_key
    )
    return spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[head],
    )


def schnetpack_inputs(
    z: Tensor,
    pos: Tensor,
    batch: Tensor,
    *,
    cutoff: float = 5.0,
    pairs: Tensor | None = None,
    num_molecules: int | None = None,
) -> dict[str, Tensor]:
    """schnetpack's input dict for a batch, neighbour list from chemprune's radius graph."""
    spk = import_schnetpack()
    p = spk.properties
    if pairs is None:
        pairs = radius_pairs(pos, batch, cutoff)
    if num_molecules is None:
        num_molecules = int(batch[-1]) + 1 if batch.numel() else 0
    idx_i = torch.cat([pairs[0], pairs[1]])
    idx_j = torch.cat([pairs[1], pairs[0]])
    return {
        p.Z: z.long(),
        p.R: pos,
        p.idx_m: batch,
        p.n_atoms: torch.bincount(batch, minlength=num_molecules),
        p.idx_i: idx_i,
        p.idx_j: idx_j,
        p.offsets: pos.new_zeros(idx_i.numel(), 3),
    }


class SchnetpackMolecules(torch.utils.data.Dataset):
    """Molecules as schnetpack samples: one dict per molecule, transforms applied per sample.

    ``__getitem__`` builds the dict that ``ASEAtomsData`` builds from a database row (float64
    positions, zero cell, no periodicity, ``n_atoms``, ``_idx``, the target as ``[1]``), from
    in-memory arrays instead of SQLite, then applies ``transforms`` in order.
    """

    def __init__(
        self,
        z: np.ndarray,
        pos: np.ndarray,
        ptr: np.ndarray,
        y: np.ndarray | None = None,
        *,
        transforms: Sequence[nn.Module] = (),
        target_key: str = "y",
    ) -> None:
        self.p = import_schnetpack().properties
        self.z = np.asarray(z, dtype=np.int64)
        self.pos = np.asarray(pos, dtype=np.float64)
        self.ptr = np.asarray(ptr, dtype=np.int64)
        self.y = None if y is None else np.asarray(y, dtype=np.float64)
        self.transforms = list(transforms)
        self.target_key = target_key

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        p = self.p
        a, b = int(self.ptr[index]), int(self.ptr[index + 1])
        sample = {
            p.idx: torch.tensor([index]),
            p.n_atoms: torch.tensor([b - a]),
            p.Z: torch.tensor(self.z[a:b], dtype=torch.long),
            p.R: torch.tensor(self.pos[a:b]),
            p.cell: torch.zeros(1, 3, 3, dtype=torch.float64),
            p.pbc: torch.zeros(3, dtype=torch.bool),
        }
        if self.y is not None:
            sample[self.target_key] = torch.tensor([self.y[index]])
        for t in self.transforms:
            sample = t(sample)
        return sample


def schnetpack_transforms(cutoff: float = 5.0, neighbor_list: str = "matscipy") -> list[nn.Module]:
    """Per-sample transforms of schnetpack's QM9 recipe: neighbour list, then ``CastTo32``.

    ``neighbor_list``: ``"matscipy"`` (``MatScipyNeighborList``, schnetpack's QM9 config) or
    ``"ase"`` (``ASENeighborList``).
    """
    spk = import_schnetpack()
    kinds = {
        "matscipy": spk.transform.MatScipyNeighborList,
        "ase": spk.transform.ASENeighborList,
    }
    if neighbor_list not in kinds:
        raise ValueError(f"neighbor_list must be one of {sorted(kinds)}, got {neighbor_list!r}")
    return [kinds[neighbor_list](cutoff=cutoff), spk.transform.CastTo32()]


def schnetpack_collate(samples: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """schnetpack's own collate function (``schnetpack.data.loader._atoms_collate_fn``)."""
    import_schnetpack()
    from schnetpack.data.loader import _atoms_collate_fn

    return _atoms_collate_fn(list(samples))


# ---------------------------------------------------------------------- weight import
def _check_activation(layer: nn.Module, want: Any, where: str) -> None:
    """``want``: the activation function, or ``None`` for none (``nn.Identity``)."""
    act = getattr(layer, "activation", None)
    ok = isinstance(act, nn.Identity) if want is None else act is want
    if not ok:
        expected = "none" if want is None else getattr(want, "__name__", repr(want))
        raise ValueError(f"{where}: activation {act!r}, expected {expected}")


def _copy_linear(dst: nn.Linear, src: nn.Linear) -> None:
    if dst.weight.shape != src.weight.shape or (dst.bias is None) != (src.bias is None):
        raise ValueError(f"layer shape mismatch: {tuple(src.weight.shape)} -> {dst}")
    dst.weight.copy_(src.weight)
    if dst.bias is not None:
        dst.bias.copy_(src.bias)


@torch.no_grad()
def from_schnetpack(model: nn.Module) -> SchNet:
    """Copy a schnetpack SchNet ``NeuralNetworkPotential`` into chemprune's :class:`SchNet`.

    Supported: ``PairwiseDistances`` input, SchNet with an ``nn.Embedding``, fixed evenly spaced
    ``GaussianRBF`` from 0 to the cutoff, ``CosineCutoff``, unshared interactions, shifted
    softplus everywhere, no electronic embeddings, one two-layer ``Atomwise`` ('sum' or 'avg')
    and no post-processors. Raises ``TypeError``/``ValueError`` otherwise.
    """
    spk = import_schnetpack()
    ssp = spk.nn.activations.shifted_softplus
    if not isinstance(model, spk.model.NeuralNetworkPotential):
        raise TypeError(f"expected a schnetpack NeuralNetworkPotential, got {type(model)}")
    rep = model.representation
    if not isinstance(rep, spk.representation.SchNet):
        raise TypeError(f"expected a schnetpack SchNet representation, got {type(rep)}")
    if [type(m) for m in model.input_modules] != [spk.atomistic.PairwiseDistances]:
        raise ValueError("only input_modules=[PairwiseDistances] is supported")
    if len(model.postprocessors) and model.do_postprocessing:
        raise ValueError("post-processors (e.g. AddOffsets) are not supported")
    if len(rep.electronic_embeddings):
        raise ValueError("electronic embeddings are not supported")
    if type(rep.embedding) is not nn.Embedding:
        raise ValueError(f"unsupported nuclear embedding {type(rep.embedding).__name__}")
    if len({id(m) for m in rep.interactions}) != len(rep.interactions):
        raise ValueError("shared interactions are not supported")
    if not isinstance(rep.cutoff_fn, spk.nn.CosineCutoff):
        raise ValueError(f"unsupported cutoff function {type(rep.cutoff_fn).__name__}")
    cutoff = float(rep.cutoff_fn.cutoff)
    rbf = rep.radial_basis
    if not isinstance(rbf, spk.nn.GaussianRBF):
        raise ValueError(f"unsupported radial basis {type(rbf).__name__}")
    grid = torch.linspace(0.0, cutoff, rbf.n_rbf)
    if not (
        torch.allclose(rbf.offsets.detach().cpu(), grid, atol=1e-6)
        and torch.allclose(rbf.widths.detach().cpu(), torch.full_like(grid, float(grid[1])))
    ):
        raise ValueError("GaussianRBF must have evenly spaced offsets from 0 to the cutoff")
    if len(model.output_modules) != 1:
        raise ValueError("exactly one output module is supported")
    head = model.output_modules[0]
    if not isinstance(head, spk.atomistic.Atomwise) or head.aggregation_mode not in ("sum", "avg"):
        raise ValueError("the output module must be an Atomwise with 'sum' or 'avg' aggregation")
    outnet = list(head.outnet)
    if len(outnet) != 2 or outnet[1].out_features != 1:
        raise ValueError("the Atomwise MLP must have two layers and one output")
    _check_activation(outnet[0], ssp, "Atomwise hidden layer")
    _check_activation(outnet[1], None, "Atomwise output layer")

    blocks = list(rep.interactions)
    for b, blk in enumerate(blocks):
        _check_activation(blk.filter_network[0], ssp, f"interaction {b} filter network")
        _check_activation(blk.f2out[0], ssp, f"interaction {b} f2out")
        for layer in (blk.in2f, blk.filter_network[1], blk.f2out[1]):
            _check_activation(layer, None, f"interaction {b}")
    net = SchNet(
        hidden_channels=rep.n_atom_basis,
        filter_channels=[blk.in2f.out_features for blk in blocks],
        filter_hidden_channels=[blk.filter_network[0].out_features for blk in blocks],
        num_interactions=len(blocks),
        num_gaussians=rbf.n_rbf,
        cutoff=cutoff,
        readout="sum" if head.aggregation_mode == "sum" else "mean",
        max_z=rep.embedding.num_embeddings,
        head_channels=outnet[0].out_features,
    ).to(rep.embedding.weight.device)
    net.embedding.weight.copy_(rep.embedding.weight)
    for dst, src in zip(net.interactions, blocks, strict=True):
        _copy_linear(dst.in2f, src.in2f)
        _copy_linear(dst.filter_network.lin1, src.filter_network[0])
        _copy_linear(dst.filter_network.lin2, src.filter_network[1])
        _copy_linear(dst.f2out, src.f2out[0])
        _copy_linear(dst.out, src.f2out[1])
    _copy_linear(net.lin1, outnet[0])
    _copy_linear(net.lin2, outnet[1])
    return net
