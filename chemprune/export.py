"""Deployment files that run with torch alone: a ``torch.export`` program (default) or frozen
TorchScript.

``torch.export`` (the successor of TorchScript, deprecated in torch 2.13) writes an ``.pt2``
archive of ATen operations: ``torch.export.load(path).module()(z, pos, batch)`` runs it in a
process where chemprune is not installed, for any number of atoms (the atom dimension is
dynamic), with gradients with respect to ``pos`` (forces). Its radius graph is
:func:`chemprune.models.graph.dense_radius_pairs`, ``O(N^2)`` in the batch's atoms: meant for a
molecule at a time (molecular dynamics, ASE) or batches of a few dozen. The frozen TorchScript
archive (``--format torchscript``) is what ``--runtime torchscript`` runs in-process and is kept
while torch can load it. Either file holds the target, unit and architecture as
``chemprune.json``; every export is checked against the eager model (values and forces, to 1e-5)
on a few molecules before it is written.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.checkpoint import load_model
from chemprune.models.graph import dense_radius_pairs
from chemprune.models.schnet import SchNet
from chemprune.runtime import compile_for_inference

__all__ = [
    "FORMATS",
    "ExportableSchNet",
    "ExportedRuntime",
    "export_model",
    "export_program",
    "export_torchscript",
    "load_exported",
]

META = "chemprune.json"
FORMATS = ("export", "torchscript")
INPUTS = "forward(z: int64 [N], pos: float32 [N, 3] Angstrom, batch: int64 [N] sorted)"


class ExportableSchNet(nn.Module):
    """``model``'s forward with no data-dependent Python: what ``torch.export`` traces.

    Inputs are not validated here (atomic numbers outside the embedding fail in it); the
    molecule count is ``batch.max() + 1``.
    """

    def __init__(self, model: SchNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        m = self.model
        pairs = dense_radius_pairs(pos, batch, m.cutoff)
        y = m.atom_outputs(m.atom_features(z, pos, batch, pairs), z)
        n = batch.max().item() + 1
        torch._check(n >= 1)
        out = y.new_zeros(n).index_add(0, batch, y)
        if m.readout == "mean":
            counts = y.new_zeros(n).index_add(0, batch, torch.ones_like(y))
            out = out / counts.clamp_min(1.0)
        return out


class ExportedRuntime(nn.Module):
    """An exported program called like :class:`SchNet` (``num_molecules`` is implied by
    ``batch``; precomputed ``pairs`` are not taken), with SchNet's input checks in Python."""

    def __init__(self, program: nn.Module, *, max_z: int) -> None:
        super().__init__()
        self.program = program
        self.max_z = int(max_z)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        pairs: Tensor | None = None,
        num_molecules: int | None = None,
    ) -> Tensor:
        if pairs is not None:
            raise ValueError("the export runtime computes its own pairs")
        if batch is None:
            batch = torch.zeros_like(z)
        if z.numel() == 0:
            return pos.new_zeros(0 if num_molecules is None else num_molecules)
        if int(z.min()) < 1 or int(z.max()) >= self.max_z:
            raise ValueError(f"atomic numbers must be in [1, {self.max_z - 1}]")
        out = self.program(z, pos, batch)
        if num_molecules is not None and num_molecules != out.numel():
            raise ValueError(f"batch holds {out.numel()} molecules, not {num_molecules}")
        return out


def _examples() -> list[tuple[Tensor, Tensor, Tensor]]:
    """Small fixed molecules (ethanol, water + methane, one carbon) for tracing and checks."""
    g = torch.Generator().manual_seed(0)
    ethanol = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])
    two = torch.tensor([8, 1, 1, 6, 1, 1, 1, 1])
    out = []
    for z, batch in (
        (ethanol, torch.zeros(9, dtype=torch.long)),
        (two, torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])),
        (torch.tensor([6]), torch.zeros(1, dtype=torch.long)),
    ):
        pos = torch.randn(len(z), 3, generator=g) * 1.1
        out.append((z, pos, batch))
    return out


def check_against(model: SchNet, run, what: str, atol: float = 1e-5) -> None:
    """Raise unless ``run(z, pos, batch)`` equals ``model`` on the examples, forces included."""
    for z, pos, batch in _examples():
        pa, pb = pos.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        ya = model(z, pa, batch)
        yb = run(z, pb, batch)
        (fa,) = torch.autograd.grad(ya.sum(), pa)
        (fb,) = torch.autograd.grad(yb.sum(), pb)
        if not (torch.allclose(ya, yb, atol=atol, rtol=atol) and torch.allclose(fa, fb, atol=atol)):
            raise RuntimeError(
                f"{what} differs from the eager model (values {ya.tolist()} vs {yb.tolist()}); "
                "not written"
            )


def export_program(model: SchNet) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (eval mode) with a dynamic number of atoms."""
    model.eval()
    z, pos, batch = _examples()[0]
    atoms = torch.export.Dim("atoms", min=1, max=1_000_000)
    return torch.export.export(
        ExportableSchNet(model),
        (z, pos, batch),
        dynamic_shapes={"z": {0: atoms}, "pos": {0: atoms}, "batch": {0: atoms}},
        strict=False,
    )


def _atomic(out: Path, write) -> None:
    """``write(tmp)`` to a file of ``out``'s name in a temporary folder beside it, then rename:
    the archive's inner folder is named after ``out``, and a crash leaves no partial file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp = folder / out.name
    try:
        write(str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        folder.rmdir()


def export_model(
    model_path: os.PathLike | str, out: os.PathLike | str, *, fmt: str = "export"
) -> dict[str, Any]:
    """Write the checkpoint's model as a ``torch.export`` program or frozen TorchScript,
    atomically, after checking it against the eager model; returns the stored metadata."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    model, ckpt = load_model(model_path)
    meta = {
        "target": ckpt["target"],
        "config": ckpt["config"],
        "source": str(model_path),
        "inputs": INPUTS,
        "format": fmt,
    }
    out = Path(out)
    if fmt == "torchscript":
        scripted = compile_for_inference(model)
        check_against(model, scripted, "the TorchScript graph")
        meta["runtime"] = "torchscript, frozen, optimize_for_inference"
        _atomic(
            out, lambda tmp: torch.jit.save(scripted, tmp, _extra_files={META: json.dumps(meta)})
        )
        return meta
    program = export_program(model)
    check_against(model, program.module(), "the exported program")
    meta["runtime"] = f"torch.export (torch {torch.__version__}), dynamic atom count"
    meta["load"] = "torch.export.load(path).module()(z, pos, batch)"
    _atomic(out, lambda tmp: torch.export.save(program, tmp, extra_files={META: json.dumps(meta)}))
    return meta


def export_torchscript(model_path: os.PathLike | str, out: os.PathLike | str) -> dict[str, Any]:
    """:func:`export_model` with ``fmt="torchscript"``."""
    return export_model(model_path, out, fmt="torchscript")


def load_exported(path: os.PathLike | str) -> tuple[nn.Module, dict[str, Any]]:
    """The module and metadata of a file written by :func:`export_model` (either format)."""
    extra = {META: ""}
    with zipfile.ZipFile(path) as zf:
        is_program = any(n.endswith("/archive_format") for n in zf.namelist())
    if is_program:
        module = torch.export.load(str(path), extra_files=extra).module()
    else:
        module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra[META] or "{}")
