"""Format-agnostic file safety shared by every checkpoint format (the SchNet checkpoints of
:mod:`chemprune.molecules.checkpoint`, the generator files of :mod:`chemprune.engines.gan.checkpoint`,
reaction-nmt's model files, benchmark results):

* :func:`atomic_write`, :func:`atomic_save`, :func:`atomic_write_text` - write through a temporary
  file, fsync and rename, so a crash leaves the old file or the new one, never a truncated one;
* :func:`load_weights_file` - ``torch.load(weights_only=True)`` with one-line errors
  (:class:`CheckpointError`), :func:`unpickling_refusal` says what the unpickler refused;
* :func:`weights_digest` - SHA-256 over an architecture, a target and the weights;
  :func:`check_finite` refuses NaN or inf weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "CheckpointError",
    "atomic_save",
    "atomic_write",
    "atomic_write_text",
    "check_finite",
    "load_weights_file",
    "unpickling_refusal",
    "weights_digest",
]


class CheckpointError(ValueError):
    """A file is not a usable chemprune checkpoint; the message names the file."""


def atomic_write(path: os.PathLike | str, write: Callable[[IO[bytes]], None]) -> Path:
    """``write(fh)`` to a temporary file in ``path``'s folder, fsync, then rename over ``path``.

    A crash at any point leaves either the old file or the new one, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: os.PathLike | str) -> Path:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write_text`)."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, fsync and rename: a crash
    leaves the old file or the new one, never a truncated one."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def load_weights_file(path: os.PathLike | str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU with one-line errors for bad files.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: a folder, an empty, truncated or corrupted file, or one holding objects
            other than tensors and plain data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"model file {path} is a directory, not a checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"model file {path} is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"model file {path} holds objects other than tensors and plain data "
            f"({unpickling_refusal(err)}) and is not loaded: every file chemprune writes holds "
            "tensors and plain data only (a model pickled whole by another program? save its "
            "state_dict there)"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged file makes torch.load raise anything
        # (RuntimeError, EOFError, BadZipFile, and for a damaged header the legacy unpickler's
        # IndexError or KeyError, found by tests/test_fuzz.py)
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"model file {path} is truncated or corrupted: {type(err).__name__}: {msg}"
        ) from None
    return obj


def unpickling_refusal(err: BaseException) -> str:
    """What a weights-only ``torch.load`` refused, in a few words (``it names the Python object
    argparse.Namespace``), without torch's advice to load the file with ``weights_only=False``
    (which runs whatever code the file names: never for a file one does not trust)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it names the Python object {found.group(1)}"
    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?:\.\s|\.?$)", text, re.M)
    if found and found.group(1).strip():
        return found.group(1).strip()[:120]
    return "the unpickler refused it"


def _canonical(obj: Any) -> Any:
    """``obj`` with tensors turned into lists, for a key-sorted JSON dump."""
    if isinstance(obj, torch.Tensor):
        return {"tensor": str(obj.dtype), "values": obj.tolist()}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return obj


def weights_digest(
    state_dict: dict[str, torch.Tensor], config: dict[str, Any], target: dict[str, Any]
) -> str:
    """SHA-256 over the architecture, the target and every tensor's name, dtype, shape and bytes
    (in sorted order), so that any change to what defines the model's predictions changes it."""
    h = hashlib.sha256()
    h.update(json.dumps(_canonical({"config": config, "target": target}), sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_finite(state_dict: dict[str, torch.Tensor], path: os.PathLike | str) -> None:
    """Refuse weights holding NaN or inf (``CheckpointError`` naming the file and tensor)."""
    for name, t in state_dict.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            n = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"model file {path}: {n} non-finite weight(s) in {name!r} (NaN or inf); the "
                "model would predict nonsense"
            )
