"""Deployment files that run with torch alone: a ``torch.export`` program (default) or frozen
TorchScript.

``torch.export`` (the successor of TorchScript, deprecated in torch 2.13) writes an ``.pt2``
archive of ATen operations: ``torch.export.load(path).module()(z, pos, batch)`` runs it in a
process where chemprune is not installed, for any number of atoms (the atom dimension is
dynamic), with gradients with respect to ``pos`` (forces). Its radius graph is
:func:`chemprune.molecules.models.graph.dense_radius_pairs`, ``O(N^2)`` in the batch's atoms: meant for a
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
from torch import nn

from chemprune.deploy.runtime import compile_for_inference, example_molecules, export_program
from chemprune.molecules.checkpoint import load_model
from chemprune.molecules.models.schnet import SchNet

__all__ = ["FORMATS", "check_against", "export_model", "export_torchscript", "load_exported"]

META = "chemprune.json"
FORMATS = ("export", "torchscript")
INPUTS = "forward(z: int64 [N], pos: float32 [N, 3] Angstrom, batch: int64 [N] sorted)"


def check_against(model: SchNet, run, what: str, atol: float = 1e-5) -> None:
    """Raise unless ``run(z, pos, batch)`` equals ``model`` on the examples, forces included."""
    for z, pos, batch in example_molecules():
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
