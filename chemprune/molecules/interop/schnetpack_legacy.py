"""schnetpack 0.x model files (``best_model``) as chemprune SchNets, read without running them.

schnetpack 0.x saved whole module objects with the legacy ``torch.save`` layout; the file is read
by the allow-listed unpickler of :mod:`chemprune.molecules.interop.legacy_pickle` (no code from the file
runs), the module tree is collected from the inert records (:func:`collect_modules`), and
:func:`from_schnetpack_legacy` checks that chemprune's :class:`SchNet` computes the same function
(reading every width and setting from the file) before copying the weights.

schnetpack 0.x builds its neighbour list without a cutoff for molecules (all pairs ``j != i``)
and applies the cosine cutoff in every filter, which is chemprune's radius graph at the same
cutoff: pairs beyond it contribute zero in both.

References:
    K. T. Schuett et al., "SchNetPack: A Deep Learning Toolbox For Atomistic Systems",
    J. Chem. Theory Comput. 15, 448 (2019).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from chemprune.common.atomic import CheckpointError, check_finite
from chemprune.molecules.interop.legacy_pickle import InertObject, load_legacy_torch_file
from chemprune.molecules.models.schnet import SchNet

__all__ = [
    "LegacyModules",
    "UnsupportedModelError",
    "SCHNETPACK_PROPERTIES",
    "collect_modules",
    "read_schnetpack_legacy",
    "from_schnetpack_legacy",
]

#: schnetpack 0.x QM9 property names -> chemprune target names (both in eV)
SCHNETPACK_PROPERTIES = {
    "energy_U0": "U0",
    "energy_U": "U",
    "enthalpy_H": "H",
    "free_energy": "G",
    "homo": "homo",
    "lumo": "lumo",
    "gap": "gap",
    "zpve": "zpve",
}

_SPK = "schnetpack."
_SSP = "schnetpack.nn.activations.shifted_softplus"
_DENSE = "schnetpack.nn.base.Dense"
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")


class UnsupportedModelError(CheckpointError):
    """The file holds a model chemprune's SchNet cannot represent (the message says what)."""


@dataclass
class LegacyModules:
    """A pickled module tree, flattened.

    Attributes:
        tensors: ``{dotted name: tensor}`` of every parameter and buffer (shared modules under
            each of their names, as ``state_dict`` lists them).
        classes: ``{module path: "module.Class"}`` ("" is the root).
        attributes: ``{module path: {name: value}}``, the module's other attributes.
        aliases: ``{module path: first path}`` for a module object met a second time.
    """

    tensors: dict[str, Tensor] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def collect_modules(root: Any) -> LegacyModules:
    """Walk ``_parameters``, ``_buffers`` and ``_modules`` of inert module records."""
    out = LegacyModules()
    first: dict[int, str] = {}

    def walk(obj: Any, path: str) -> None:
        if not isinstance(obj, InertObject) or not isinstance(obj.state, dict):
            raise UnsupportedModelError(f"{path or 'the root'} is not a pickled module")
        if id(obj) in first:
            out.aliases[path] = first[id(obj)]
        else:
            first[id(obj)] = path
        state = obj.state
        out.classes[path] = obj.global_name
        skip = {"_parameters", "_buffers", "_modules"}
        out.attributes[path] = {k: v for k, v in state.items() if k not in skip}
        for group in ("_parameters", "_buffers"):
            for name, t in (state.get(group) or {}).items():
                if t is not None:
                    if not isinstance(t, Tensor):
                        raise UnsupportedModelError(f"{_join(path, name)} is not a tensor")
                    out.tensors[_join(path, name)] = t
        for name, sub in (state.get("_modules") or {}).items():
            if sub is not None:
                walk(sub, _join(path, name))

    walk(root, "")
    return out


def read_schnetpack_legacy(path: os.PathLike | str) -> LegacyModules:
    """Read a schnetpack 0.x model file (no code from it runs); see :func:`collect_modules`."""
    obj = load_legacy_torch_file(path)
    name = obj.global_name if isinstance(obj, InertObject) else type(obj).__name__
    if not isinstance(obj, InertObject) or not name.startswith(_SPK):
        raise UnsupportedModelError(f"model file {path} holds a {name}, not a schnetpack model")
    try:
        return collect_modules(obj)
    except UnsupportedModelError as err:
        raise UnsupportedModelError(f"model file {path}: {err}") from None


class _Checker:
    """Reads what the model holds; any mismatch raises one line naming the module."""

    def __init__(self, mods: LegacyModules, where: str) -> None:
        self.m = mods
        self.where = where

    def fail(self, msg: str) -> None:
        raise UnsupportedModelError(f"{self.where}: {msg}; chemprune's SchNet cannot represent it")

    def cls(self, path: str, *names: str) -> str:
        got = self.m.classes.get(path)
        if got is None:
            self.fail(f"no module {path!r}")
        if got.rsplit(".", 1)[-1] not in names:
            self.fail(f"{path or 'the model'} is a {got}, expected {' or '.join(names)}")
        attrs = self.m.attributes[path]
        if any(attrs.get(h) for h in _HOOKS):
            self.fail(f"{path} has hooks")
        return got

    def attr(self, path: str, name: str, default: Any = None) -> Any:
        return self.m.attributes[path].get(name, default)

    def tensor(self, name: str) -> Tensor:
        if name not in self.m.tensors:
            self.fail(f"no tensor {name!r}")
        return self.m.tensors[name]

    def children(self, path: str) -> list[str]:
        pre = f"{path}."
        return sorted(
            {p[len(pre) :].split(".")[0] for p in self.m.classes if p.startswith(pre)},
            key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s),
        )

    def dense(self, path: str, *, activation: str | None, bias: bool | None = True) -> Tensor:
        """The weight of a ``Dense`` layer, its activation and bias checked."""
        self.cls(path, "Dense", "Linear")
        act = self.attr(path, "activation")
        name = None if act is None else getattr(act, "global_name", repr(act))
        if name != activation:
            self.fail(f"{path} has activation {name}, expected {activation}")
        w = self.tensor(f"{path}.weight")
        has_bias = f"{path}.bias" in self.m.tensors
        if bias is not None and has_bias != bias:
            self.fail(f"{path} {'has' if has_bias else 'lacks'} a bias")
        return w

    def scalar(self, name: str) -> float:
        t = self.tensor(name)
        if t.numel() != 1:
            self.fail(f"{name} has {t.numel()} values, expected one")
        return float(t.reshape(()))


def _copy(state: dict[str, Tensor], dst: str, mods: LegacyModules, src: str) -> None:
    state[f"{dst}.weight"] = mods.tensors[f"{src}.weight"]
    if f"{src}.bias" in mods.tensors:
        state[f"{dst}.bias"] = mods.tensors[f"{src}.bias"]


@torch.no_grad()
def from_schnetpack_legacy(mods: LegacyModules, *, where: str = "model") -> tuple[SchNet, dict]:
    """chemprune's :class:`SchNet` computing what the schnetpack 0.x ``AtomisticModel`` does.

    Read from the file: widths (per block), number of blocks, Gaussian grid and width, cutoff,
    head width, aggregation ('sum' or 'avg'), standardisation and atom references. Refused
    (:class:`UnsupportedModelError`, one line): cutoffs other than ``CosineCutoff`` or differing
    between blocks, Gaussians not evenly spaced from 0 to the cutoff or with a width other than
    the spacing, centred Gaussians, normalised filters (``Aggregate(mean=True)`` in a CFConv),
    shared interactions, charged systems, intermediate outputs, other activations, hooks, more
    than one output module or an output MLP other than Dense(ssp) -> Dense(1).

    Returns:
        ``(model in eval mode, info)`` with ``info["property"]`` (schnetpack's property name).
    """
    c = _Checker(mods, where)
    c.cls("", "AtomisticModel")
    rep, head = "representation", "output_modules.0"
    c.cls(rep, "SchNet")
    if c.attr(rep, "charged_systems") or f"{rep}.charge" in mods.tensors:
        c.fail("it is a model for charged systems")
    if c.attr(rep, "return_intermediate"):
        c.fail("its representation returns intermediate features")
    c.cls(f"{rep}.embedding", "Embedding")
    emb = c.tensor(f"{rep}.embedding.weight")
    max_z, hidden = (int(s) for s in emb.shape)
    c.cls(f"{rep}.distances", "AtomDistances")
    rbf = f"{rep}.distance_expansion"
    c.cls(rbf, "GaussianSmearing")
    if c.attr(rbf, "centered"):
        c.fail("its Gaussians are centred (offsets used as widths)")
    offsets = c.tensor(f"{rbf}.offsets").double()
    widths = c.tensor(f"{rbf}.width").double()

    blocks = c.children(f"{rep}.interactions")
    if not blocks or blocks != [str(b) for b in range(len(blocks))]:
        c.fail("it has no interaction blocks 0, 1, ...")
    paths = [f"{rep}.interactions.{b}" for b in blocks]
    if any(p in mods.aliases for p in paths):
        c.fail("its interaction blocks share weights (coupled_interactions=True)")
    cutoffs, filters, fhidden, mids = [], [], [], []
    state: dict[str, Tensor] = {"embedding.weight": emb}
    for b, p in enumerate(paths):
        c.cls(p, "SchNetInteraction")
        cf = f"{p}.cfconv"
        c.cls(cf, "CFConv")
        # CFConv.forward uses its own filter and cutoff networks (the block's are aliases)
        c.cls(f"{cf}.filter_network", "Sequential")
        if c.children(f"{cf}.filter_network") != ["0", "1"]:
            c.fail(f"{cf}.filter_network is not two Dense layers")
        w1 = c.dense(f"{cf}.filter_network.0", activation=_SSP)
        w2 = c.dense(f"{cf}.filter_network.1", activation=None)
        if f"{cf}.cutoff_network" not in mods.classes:
            c.fail(f"{cf} has no cutoff network")
        c.cls(f"{cf}.cutoff_network", "CosineCutoff")
        cutoffs.append(c.scalar(f"{cf}.cutoff_network.cutoff"))
        c.cls(f"{cf}.agg", "Aggregate")
        if c.attr(f"{cf}.agg", "average") or c.attr(f"{cf}.agg", "axis") != 2:
            c.fail(f"{cf} normalises its filters (normalize_filter=True, a mean over neighbours)")
        w_in = c.dense(f"{cf}.in2f", activation=None, bias=False)
        w_f2 = c.dense(f"{cf}.f2out", activation=_SSP)
        w_out = c.dense(f"{p}.dense", activation=None)
        if not (w2.shape[0] == w_in.shape[0] == w_f2.shape[1] and w1.shape[0] == w2.shape[1]):
            c.fail(f"{p} has inconsistent filter widths")
        if w_in.shape[1] != hidden or w_out.shape != (hidden, w_f2.shape[0]):
            c.fail(f"{p} does not map {hidden} atom features back to {hidden}")
        if w1.shape[1] != offsets.numel():
            c.fail(f"{p}'s filter network reads {w1.shape[1]} Gaussians, not {offsets.numel()}")
        filters.append(int(w2.shape[0]))
        fhidden.append(int(w1.shape[0]))
        mids.append(int(w_f2.shape[0]))
        q = f"interactions.{b}"
        _copy(state, f"{q}.filter_network.lin1", mods, f"{cf}.filter_network.0")
        _copy(state, f"{q}.filter_network.lin2", mods, f"{cf}.filter_network.1")
        _copy(state, f"{q}.in2f", mods, f"{cf}.in2f")
        _copy(state, f"{q}.f2out", mods, f"{cf}.f2out")
        _copy(state, f"{q}.out", mods, f"{p}.dense")
    cutoff = cutoffs[0]
    if any(abs(x - cutoff) > 1e-6 * cutoff for x in cutoffs) or cutoff <= 0:
        c.fail(f"its blocks have different cutoffs {sorted(set(cutoffs))}")
    n_rbf = offsets.numel()
    grid = torch.linspace(0.0, cutoff, n_rbf, dtype=torch.float64)
    spacing = cutoff / (n_rbf - 1) if n_rbf > 1 else 0.0
    if n_rbf < 2 or not torch.allclose(offsets, grid, rtol=0, atol=1e-5 * cutoff):
        c.fail(f"its {n_rbf} Gaussian offsets are not evenly spaced from 0 to the cutoff {cutoff}")
    if widths.shape != offsets.shape or not torch.allclose(
        widths, torch.full_like(widths, spacing), rtol=1e-5, atol=0
    ):
        c.fail(f"its Gaussian widths are not the offset spacing {spacing:.6g}")

    outs = c.children("output_modules")
    if outs != ["0"]:
        c.fail(f"it has {len(outs)} output modules, expected one")
    c.cls(head, "Atomwise")
    if c.attr(head, "derivative"):
        c.fail("its output module also predicts a derivative (forces)")
    net = f"{head}.out_net"
    c.cls(net, "Sequential")
    c.cls(f"{net}.0", "GetItem")
    if c.attr(f"{net}.0", "key") != "representation" or c.children(net) != ["0", "1"]:
        c.fail(f"{net} does not read the representation into one MLP")
    c.cls(f"{net}.1", "MLP")
    mlp = f"{net}.1.out_net"
    if c.children(mlp) != ["0", "1"]:
        c.fail(f"{mlp} is not two Dense layers")
    h1 = c.dense(f"{mlp}.0", activation=_SSP)
    h2 = c.dense(f"{mlp}.1", activation=None)
    if h1.shape[1] != hidden or h2.shape != (1, h1.shape[0]):
        c.fail(f"{mlp} does not map {hidden} features to one output")
    _copy(state, "lin1", mods, f"{mlp}.0")
    _copy(state, "lin2", mods, f"{mlp}.1")
    c.cls(f"{head}.standardize", "ScaleShift")
    mean = c.scalar(f"{head}.standardize.mean")
    std = c.scalar(f"{head}.standardize.stddev")
    pool = f"{head}.atom_pool"
    c.cls(pool, "Aggregate")
    if c.attr(pool, "axis") != 1:
        c.fail(f"{pool} does not aggregate over atoms")
    readout = "mean" if c.attr(pool, "average") else "sum"
    atomref = torch.zeros(max_z)
    if f"{head}.atomref" in mods.classes:
        c.cls(f"{head}.atomref", "Embedding")
        ref = c.tensor(f"{head}.atomref.weight")
        if ref.dim() != 2 or ref.shape[1] != 1 or ref.shape[0] > max_z:
            c.fail(f"its atomref has shape {tuple(ref.shape)}")
        atomref[: ref.shape[0]] = ref[:, 0]

    model = SchNet(
        hidden_channels=hidden,
        filter_channels=filters,
        filter_hidden_channels=fhidden,
        interaction_channels=mids,
        num_interactions=len(paths),
        num_gaussians=n_rbf,
        cutoff=cutoff,
        readout=readout,
        max_z=max_z,
        mean=mean,
        std=std,
        atomref=atomref,
        head_channels=int(h1.shape[0]),
    )
    full = dict(model.state_dict())
    full.update({k: v.to(full[k].dtype).reshape(full[k].shape) for k, v in state.items()})
    model.load_state_dict(full, strict=True)
    check_finite(state, where)
    info = {
        "property": c.attr(head, "property"),
        "classes": sorted(set(mods.classes.values())),
        "aggregation": "avg" if readout == "mean" else "sum",
    }
    return model.eval(), info
