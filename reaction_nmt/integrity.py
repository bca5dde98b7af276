"""Checksums of the weights in the reaction-model files this project writes.

Every checkpoint ``reaction-nmt`` writes itself (``average``, ``compress`` in any storage,
``distill``'s retraining start, the released model) carries an ``integrity`` entry: the SHA-256
of every tensor under ``model``, ``generator`` and ``sparse`` (name, dtype, shape, bytes, in
sorted order), of the vocabulary and (``sha256+layout``, since the sparse files' decoding
reads them) of the non-tensor entries of ``sparse`` and ``order``: dtypes, shapes, scales,
aliases. Files stamped ``sha256`` (tensors and vocabulary only) are still verified as such. Loading checks it, so a flipped byte inside the weights is
a clear error naming the file rather than a model that translates nonsense. Checkpoints written
by OpenNMT-py's own trainer (``model_step_N.pt``) carry none and are checked for non-finite
weights only. Pure functions over dicts; no OpenNMT-py import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["IntegrityError", "ALGORITHM", "digest", "stamp", "verify"]

ALGORITHM = "sha256+layout"
_KNOWN = ("sha256", ALGORITHM)
_PARTS = ("model", "generator", "sparse")


class IntegrityError(ValueError):
    """A checkpoint's weights do not match its checksum, or hold non-finite values."""


def _tensors(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from _tensors(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{prefix}/{i}")


def _vocab_bytes(vocab: Any) -> bytes:
    return json.dumps(vocab, sort_keys=True, default=str).encode()


def _layout(obj: Any) -> Any:
    """``obj`` with every tensor replaced by a placeholder: the metadata around them."""
    if isinstance(obj, torch.Tensor):
        return "<tensor>"
    if isinstance(obj, dict):
        return {str(k): _layout(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_layout(v) for v in obj]
    return obj


def digest(ckpt: dict, algorithm: str = ALGORITHM) -> str:
    """SHA-256 over the vocabulary and every tensor of the weight parts of ``ckpt`` (and, for
    ``sha256+layout``, the metadata of the sparse parts)."""
    if algorithm not in _KNOWN:
        raise ValueError(f"unknown integrity algorithm {algorithm!r}")
    h = hashlib.sha256()
    h.update(_vocab_bytes(ckpt.get("vocab")))
    if algorithm == ALGORITHM:
        layout = {k: _layout(ckpt.get(k)) for k in ("format", "sparse", "order")}
        h.update(json.dumps(layout, sort_keys=True, default=repr).encode())
    for part in _PARTS:
        for name, t in _tensors(ckpt.get(part), part):
            t = t.detach().to("cpu").contiguous()
            h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def stamp(ckpt: dict) -> dict:
    """``ckpt`` (a shallow copy) with its ``integrity`` entry."""
    out = {k: v for k, v in ckpt.items() if k != "integrity"}
    out["integrity"] = {"algorithm": ALGORITHM, "digest": digest(out)}
    return out


def _non_finite(ckpt: dict) -> str | None:
    for part in ("model", "generator"):
        for name, t in _tensors(ckpt.get(part), part):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name.split("/", 1)[1] if "/" in name else name
    return None


def verify(ckpt: dict, path: Path | str) -> None:
    """Raise :class:`IntegrityError` naming ``path`` if the stored checksum does not match or a
    dense weight is NaN or infinite."""
    integrity = ckpt.get("integrity")
    if integrity is not None:
        if not isinstance(integrity, dict) or integrity.get("algorithm") not in _KNOWN:
            raise IntegrityError(f"model {path} has an unreadable integrity entry")
        try:
            found = digest(ckpt, integrity["algorithm"])
        except (TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise IntegrityError(f"model {path} is corrupted: {err}") from None
        if found != integrity.get("digest"):
            raise IntegrityError(
                f"model {path} is corrupted: its weights do not match the checksum stored when "
                "it was written (a damaged copy? fetch or re-create it)"
            )
    bad = _non_finite(ckpt)
    if bad is not None:
        raise IntegrityError(f"model {path} holds non-finite weights (NaN or inf) in {bad}")
