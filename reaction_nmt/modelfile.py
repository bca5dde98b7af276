"""What a reaction-model file is, and how OpenNMT-py is made to load every kind the project
writes: the one layer under both the backend and compression (neither imports the other for
it).

* :func:`load_checkpoint`: any model file, ``torch.load(weights_only=True)`` with OpenNMT-py's
  ``argparse.Namespace`` allowed only inside :func:`onmt_loads`, the weights' checksum and
  finiteness checked (:mod:`reaction_nmt.integrity`), every failure a one-line
  :class:`~reaction_nmt.errors.BackendError` naming the file;
* sparse files (:mod:`reaction_nmt.compress.storage` writes them): :func:`is_sparse`,
  :func:`densify`;
* shrunk models: :func:`apply_recorded_shapes` and :func:`onmt_hooks`, inside which
  OpenNMT-py builds models with the recorded shapes and head counts and reads sparse files.

Importing this module does not import OpenNMT-py; :func:`onmt_hooks` and
:func:`densify` (for position encodings) do on use.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from chemprune.engines.prune.shrink import resize_to
from reaction_nmt.compress.errors import CompressError
from reaction_nmt.errors import BackendError

__all__ = [
    "FORMAT",
    "onmt_loads",
    "load_checkpoint",
    "is_sparse",
    "densify",
    "apply_recorded_shapes",
    "onmt_hooks",
]

FORMAT = "reaction-nmt-sparse/1"
_PARTS = ("model", "generator")


def onmt_loads():
    """Weights-only loads may rebuild ``argparse.Namespace`` (OpenNMT-py's ``opt``) inside this
    block only, so the rest of the process (chemprune's checkpoints) keeps refusing it."""
    return torch.serialization.safe_globals([argparse.Namespace])


def _quiet() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"onmt\.")
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp.*", category=FutureWarning)


def load_checkpoint(path: Path) -> dict:
    """An OpenNMT-py checkpoint, loaded with ``weights_only=True``; clear error otherwise."""
    _quiet()
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"model {path} does not exist")
    try:
        with onmt_loads():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        from chemprune.common.atomic import unpickling_refusal

        raise BackendError(
            f"cannot load model {path}: it holds objects other than tensors and plain data "
            f"({unpickling_refusal(err)}) and is not loaded: an OpenNMT-py 3 or reaction-nmt "
            "model holds tensors, its vocabulary and OpenNMT-py's options only"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        text = str(err).strip()
        first = text.splitlines()[0][:200] if text else "no detail"
        raise BackendError(
            f"cannot load model {path} (truncated or corrupted?): {type(err).__name__}: {first}"
        ) from None
    if not isinstance(ckpt, dict) or not {"model", "generator", "vocab", "opt"} <= set(ckpt):
        raise BackendError(f"{path} is not an OpenNMT-py checkpoint (no model/vocab/opt keys)")
    from reaction_nmt.integrity import IntegrityError, verify

    try:
        verify(ckpt, path)
    except IntegrityError as err:
        raise BackendError(str(err)) from None
    return ckpt


def is_sparse(ckpt) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == FORMAT


def _position_encoding(shape, enc_type: str) -> Tensor | None:
    from onmt.modules.embeddings import PositionalEncoding

    if len(shape) != 3 or shape[1] != 1:
        return None
    try:
        return PositionalEncoding(int(shape[2]), enc_type, max_len=int(shape[0])).pe
    except ValueError:
        return None


def _decode(entry: dict) -> Tensor:
    dtype = getattr(torch, entry["dtype"])
    shape = [int(s) for s in entry["shape"]]
    n = int(np.prod(shape)) if shape else 1
    if "bitmask" in entry:
        bits = np.unpackbits(entry["bitmask"].numpy(), count=n).astype(bool)
        index = torch.from_numpy(np.flatnonzero(bits))
    else:
        index = entry["index"].long()
    values = entry["values"]
    if "scale" in entry:
        values = values.float() * float(entry["scale"])
    flat = torch.zeros(n, dtype=dtype)
    flat[index] = values.to(dtype)
    return flat.reshape(shape)


def densify(obj: dict) -> dict:
    """A normal OpenNMT-py checkpoint from a sparse dict (keys in their original order); a
    :class:`CompressError` for one whose entries do not decode (a damaged file)."""
    if not is_sparse(obj):
        raise CompressError("not a sparse reaction-nmt model")
    try:
        return _densify(obj)
    except CompressError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError) as err:
        raise CompressError(
            f"the sparse model is corrupted (its entries do not decode: {type(err).__name__}: "
            f"{str(err).splitlines()[0][:120] if str(err) else 'no detail'})"
        ) from None


def _densify(obj: dict) -> dict:
    skip = ("format", "sparse", "order", "integrity", *_PARTS)
    out = {k: v for k, v in obj.items() if k not in skip}
    resolved: dict[str, Tensor] = {}
    pending = []
    for part in _PARTS:
        out[part] = dict(obj.get(part) or {})
        for key, entry in obj["sparse"].get(part, {}).items():
            if "alias" in entry:
                pending.append((part, key, entry["alias"]))
                continue
            if "position_encoding" in entry:
                t = _position_encoding(entry["shape"], entry["position_encoding"])
            else:
                t = _decode(entry)
            out[part][key] = t
            resolved[f"{part}/{key}"] = t
    for part, key, target in pending:
        if target not in resolved:
            raise CompressError(f"sparse model: {part}/{key} refers to unknown {target}")
        out[part][key] = resolved[target]
    for part, keys in (obj.get("order") or {}).items():
        out[part] = {k: out[part][k] for k in keys}
    return out


def apply_recorded_shapes(model: nn.Module, opt) -> nn.Module:
    """Give a freshly built model the shapes recorded in ``opt`` (no-op for plain options)."""
    shapes = getattr(opt, "compress_shapes", None) or {}
    heads = getattr(opt, "compress_heads", None) or {}
    if shapes:
        gen = getattr(model, "generator", None)
        resize_to(
            model, {k: v for k, v in shapes.items() if gen is not None or "generator" not in k}
        )
    for name, h in heads.items():
        attn = model.get_submodule(name)
        attn.head_count = int(h)
    return model


@contextlib.contextmanager
def onmt_hooks() -> Iterator[None]:
    """OpenNMT-py builds shrunk models and reads sparse files inside this block."""
    import onmt.model_builder as mb

    build, load = mb.build_base_model, mb.load_checkpoint

    def build_base_model(model_opt, vocabs):
        return apply_recorded_shapes(build(model_opt, vocabs), model_opt)

    def load_checkpoint(ckpt_path):
        ckpt = load(ckpt_path)
        return densify(ckpt) if is_sparse(ckpt) else ckpt

    mb.build_base_model, mb.load_checkpoint = build_base_model, load_checkpoint
    try:
        with onmt_loads():
            yield
    finally:
        mb.build_base_model, mb.load_checkpoint = build, load
