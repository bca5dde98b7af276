"""Compressed storage of unstructured sparsity: indices + values, optionally 8-bit.

A sparse file is a ``torch.save`` dict with the keys of an OpenNMT-py checkpoint (``model``,
``generator``, ``vocab``, ``opt``) plus ``format`` and ``sparse``: small tensors (biases, norms)
stay dense in ``model``/``generator``; every floating weight matrix with at least ``min_size``
entries moves to ``sparse[part][key]``, stored as

* the positions of its nonzeros, as a packed bitmask (1 bit per entry) or as ``int32`` flat
  indices, whichever is smaller (indices win above ~97% sparsity), and
* the nonzero values in their own dtype (``sparse``: exact round trip) or as ``int8`` with one
  ``float32`` scale per tensor (``sparse-int8``: symmetric, ``scale = max|w| / 127``; error at
  most ``scale / 2`` per weight, the zeros stay exact).

Tensors shared by several keys (tied embeddings) are stored once; sinusoidal position
encodings (``*.pe.pe``) are not stored when OpenNMT-py's ``PositionalEncoding`` rebuilds them
bit for bit (checked when saving). :func:`densify` turns the dict back into a normal
checkpoint; :func:`~reaction_nmt.compress.hooks.onmt_hooks` does so when OpenNMT-py loads one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from reaction_nmt.compress.checkpoint import save_atomic
from reaction_nmt.compress.errors import CompressError
from reaction_nmt.modelfile import FORMAT, _position_encoding, densify, is_sparse

__all__ = ["FORMAT", "STORAGES", "sparsify", "densify", "is_sparse", "save_model", "load_model"]

STORAGES = ("dense", "sparse", "sparse-int8")
_PARTS = ("model", "generator")


def _encode(t: Tensor, int8: bool) -> dict:
    flat = t.detach().flatten()
    nz = flat != 0
    nnz = int(nz.sum())
    entry: dict = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if (flat.numel() + 7) // 8 <= 4 * nnz:
        bits = np.packbits(nz.numpy().astype(np.uint8))
        entry["bitmask"] = torch.from_numpy(bits)
    else:
        entry["index"] = torch.nonzero(nz).flatten().to(torch.int32)
    values = flat[nz]
    if int8:
        peak = float(values.abs().max()) if nnz else 0.0
        scale = peak / 127.0 if peak > 0 else 1.0
        entry["scale"] = scale
        entry["values"] = torch.round(values.float() / scale).clamp(-127, 127).to(torch.int8)
    else:
        entry["values"] = values.clone()
    return entry


def sparsify(ckpt: dict, *, int8: bool = False, min_size: int = 1024) -> dict:
    """A checkpoint dict in the sparse format (see the module docstring)."""
    enc_type = getattr(ckpt["opt"], "position_encoding_type", "SinusoidalInterleaved")
    out = {k: v for k, v in ckpt.items() if k not in _PARTS}
    out["format"] = FORMAT
    out["optim"] = None
    out["sparse"] = {}
    out["order"] = {part: list(ckpt.get(part) or {}) for part in _PARTS}
    seen: dict[tuple, str] = {}
    for part in _PARTS:
        dense, sparse = {}, {}
        for key, t in (ckpt.get(part) or {}).items():
            ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            qual = f"{part}/{key}"
            if ident in seen and t.numel():
                sparse[key] = {"alias": seen[ident]}
                continue
            seen[ident] = qual
            if key.endswith(".pe.pe"):
                pe = _position_encoding(t.shape, enc_type)
                if pe is not None and pe.dtype == t.dtype and torch.equal(pe, t):
                    sparse[key] = {"position_encoding": enc_type, "shape": list(t.shape)}
                    continue
            if t.is_floating_point() and t.dim() >= 2 and t.numel() >= min_size:
                sparse[key] = _encode(t, int8)
            else:
                dense[key] = t
        out[part] = dense
        out["sparse"][part] = sparse
    return out


def save_model(ckpt: dict, path: Path, storage: str = "dense") -> int:
    """Write a checkpoint densely or sparsely (atomically); returns the file size in bytes."""
    if storage not in STORAGES:
        raise CompressError(f"unknown storage {storage!r}; use one of {STORAGES}")
    if storage == "dense":
        obj = dict(ckpt)
    else:
        obj = sparsify(ckpt, int8=storage == "sparse-int8")
    return save_atomic(obj, Path(path))


def load_model(path: Path) -> dict:
    """A dense OpenNMT-py checkpoint from a dense or sparse file (``weights_only=True``)."""
    from reaction_nmt.modelfile import load_checkpoint

    ckpt = load_checkpoint(Path(path))
    return densify(ckpt) if is_sparse(ckpt) else ckpt
