"""Export a SchNet checkpoint to TorchScript: a file that runs with torch alone.

``torch.jit.load(path)`` gives a module with ``forward(z, pos, batch)``; the target, unit and
architecture are stored as the extra file ``chemprune.json`` inside the archive. The graph is
frozen and optimised for inference (:func:`chemprune.runtime.compile_for_inference`): what
``--runtime torchscript`` runs in-process, and what ``benchmarks/compare_models.py`` times.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from chemprune.checkpoint import load_model
from chemprune.runtime import compile_for_inference

__all__ = ["export_torchscript", "load_exported"]

META = "chemprune.json"


def export_torchscript(model_path: os.PathLike | str, out: os.PathLike | str) -> dict[str, Any]:
    """Script the model of a checkpoint and save it atomically; returns the stored metadata."""
    model, ckpt = load_model(model_path)
    scripted = compile_for_inference(model)
    meta = {
        "target": ckpt["target"],
        "config": ckpt["config"],
        "source": str(model_path),
        "inputs": "forward(z: int64 [N], pos: float32 [N, 3] Angstrom, batch: int64 [N] sorted)",
        "runtime": "torchscript, frozen, optimize_for_inference",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={META: json.dumps(meta)})
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return meta


def load_exported(path: os.PathLike | str) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    extra = {META: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra[META] or "{}")
