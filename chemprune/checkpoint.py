"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``, validated.

A chemprune SchNet checkpoint is a plain dict of tensors, numbers and strings::

    {"format": "chemprune.schnet", "format_version": 1, "chemprune_version": ...,
     "config": {...SchNet constructor arguments, per-block widths...},
     "state_dict": {...},
     "target": {"name", "unit", "readout", "description"},
     "normalization": {"mean", "std", "atomref": {Z: value}},   # also in state_dict buffers
     "data": {"source", "split": {"seed", "sizes", "val", "test"}},
     "metrics": {...},
     "integrity": {"algorithm": "sha256", "digest": ...},  # of config, target and weights
     "training": {...}   # resumable state; only in a run's last.pt}

so ``predict``/``evaluate`` need nothing else to rebuild the model. The digest is checked on
every load: a flipped byte inside the weights (which ``torch.load`` does not notice) is refused
with an error naming the file, as are non-finite weights.

Files without a digest. Checkpoints written before the digest existed have no ``integrity``
section. They are still accepted (refusing them would strand every older run and model), but
nothing vouches for them, so:

* every load of one prints, once per file and process, ``chemprune: warning: <file> carries no
  digest (written before chemprune checkpoints had one): its integrity cannot be checked`` on
  stderr (re-saving it, e.g. with ``chemprune tabulate`` or ``prune``, writes a digest);
* what such a file says is still checked for shape: the sections are dicts, the weights
  tensors matching the architecture and finite, the target's name and unit strings, the split
  well-formed where a command reads it (:func:`checkpoint_split`);
* the command lines print every name taken from a file (target name, unit) through
  :func:`chemprune.common.options.printable`, so a hand-edited name cannot send terminal escape
  sequences; JSON output escapes them anyway.

A file with a digest gets the same checks; the digest covers the architecture, the target and
the weights, not the split or the metrics.

Weights-only loading never runs code from a file: a file holding other objects is refused
(:func:`unpickling_refusal` says which object), and no message suggests loading it otherwise.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from chemprune import __version__
from chemprune.models.schnet import SchNet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "atomic_save",
    "atomic_write_text",
    "check_finite",
    "checkpoint_split",
    "load_checkpoint",
    "load_model",
    "model_checkpoint",
    "unpickling_refusal",
    "weights_digest",
]

FORMAT = "chemprune.schnet"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a usable chemprune checkpoint; the message names the file."""


def _atomic_write(path: os.PathLike | str, write: Callable[[IO[bytes]], None]) -> Path:
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
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_write_text(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, fsync and rename: a crash
    leaves the old file or the new one, never a truncated one."""
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


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


_WARNED_NO_DIGEST: set[str] = set()


def _warn_no_digest(path: os.PathLike | str) -> None:
    """The warning for a file without a digest, once per file (resolved path) and process."""
    key = str(Path(path).resolve())
    if key in _WARNED_NO_DIGEST:
        return
    _WARNED_NO_DIGEST.add(key)
    from chemprune.common.options import printable

    print(
        f"chemprune: warning: {printable(path)} carries no digest (written before chemprune "
        "checkpoints had one): its integrity cannot be checked",
        file=sys.stderr,
    )


def _check_integrity(obj: dict[str, Any], path: os.PathLike | str) -> None:
    integrity = obj.get("integrity")
    if integrity is None:
        _warn_no_digest(path)  # written before checksums existed: accepted, said so
        return
    if not isinstance(integrity, dict) or integrity.get("algorithm") != "sha256":
        raise CheckpointError(f"model file {path} has an unreadable integrity section")
    try:
        digest = weights_digest(obj["state_dict"], obj["config"], obj["target"])
    except (TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"model file {path} is corrupted: {err}") from None
    if digest != integrity.get("digest"):
        raise CheckpointError(
            f"model file {path} is corrupted: its weights or architecture do not match the "
            "checksum stored when it was written (a damaged copy? fetch or re-create it)"
        )


def load_checkpoint(path: os.PathLike | str) -> dict[str, Any]:
    """Load and validate a chemprune checkpoint (weights-only unpickling).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: empty, truncated or corrupted file, a file holding objects other than
            tensors and plain data, or a foreign checkpoint (e.g. a bare PyG ``state_dict``).
    """
    obj = load_weights_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and any(str(k).startswith("interactions.") for k in obj):
            hint = " (it looks like a bare SchNet state_dict: bring it in with `chemprune import`)"
        raise CheckpointError(f"model file {path} is not a chemprune SchNet checkpoint{hint}")
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"model file {path} has format version {version!r}; this chemprune reads up to "
            f"{FORMAT_VERSION}"
        )
    for key in ("config", "state_dict", "target"):
        if not isinstance(obj.get(key), dict):
            raise CheckpointError(f"model file {path} lacks its {key!r} section")
    bad = [k for k, v in obj["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"model file {path}: state_dict entry {bad[0]!r} is not a tensor")
    target = obj["target"]
    if not isinstance(target.get("name"), str) or not isinstance(target.get("unit", ""), str):
        raise CheckpointError(f"model file {path}: its target's name or unit is not a string")
    _check_integrity(obj, path)
    return obj


def checkpoint_split(
    ckpt: dict[str, Any],
    path: os.PathLike | str,
    num_molecules: int | None = None,
    source: str | None = None,
) -> dict[str, np.ndarray] | None:
    """The molecule ids of the split recorded in a loaded checkpoint, checked
    (:func:`chemprune.data.splits.check_split`); ``None`` when it records none.

    With ``num_molecules`` (the data set's size) every id must also be below it: an id beyond
    is ``invalid`` when ``source`` (the data set's description) is the one the checkpoint
    records, and otherwise most likely means the model was trained on other data.

    Raises:
        CheckpointError: ``checkpoint <path> has an invalid split: <what>`` (negative, float,
            repeated or shared ids, an empty part, sizes that disagree, ids beyond the end of
            its own data set), or ``model file <path> was trained on other data (<source>):
            its split names molecule <i>, this data set has <n>; pass its --data-dir``.
    """
    from chemprune.data.splits import InvalidSplit, check_split

    data = ckpt.get("data")
    if data is None or data == {}:
        return None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} has an invalid data section (not a mapping)")
    info = data.get("split")
    if info is None or (isinstance(info, dict) and not info):
        return None
    try:
        parts = check_split(info)
    except InvalidSplit as err:
        raise CheckpointError(f"checkpoint {path} has an invalid split: {err.what}") from None
    if num_molecules is not None:
        part, top = max(((p, int(ids.max())) for p, ids in parts.items()), key=lambda t: t[1])
        if top >= num_molecules:
            recorded = data.get("source")
            if source is not None and recorded == source:
                raise CheckpointError(
                    f"checkpoint {path} has an invalid split: {part} names molecule {top}, "
                    f"beyond the {num_molecules} of the data set it records"
                )
            where = f" ({recorded})" if isinstance(recorded, str) and recorded else ""
            raise CheckpointError(
                f"model file {path} was trained on other data{where}: its split names molecule "
                f"{top}, this data set has {num_molecules}; pass its --data-dir"
            )
    return parts


def model_checkpoint(
    model: SchNet,
    *,
    target: dict[str, Any],
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict to save for ``model``: architecture, weights, target and provenance."""
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "chemprune_version": __version__,
        "config": model.config(),
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "target": dict(target),
        "normalization": {
            "mean": float(model.mean),
            "std": float(model.std),
            "atomref": {int(z): float(v) for z, v in enumerate(model.atomref.tolist()) if v != 0.0},
        },
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
    }
    if extra:
        ckpt.update(extra)
    ckpt["integrity"] = {
        "algorithm": "sha256",
        "digest": weights_digest(ckpt["state_dict"], ckpt["config"], ckpt["target"]),
    }
    return ckpt


def check_finite(state_dict: dict[str, torch.Tensor], path: os.PathLike | str) -> None:
    """Refuse weights holding NaN or inf (``CheckpointError`` naming the file and tensor)."""
    for name, t in state_dict.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            n = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"model file {path}: {n} non-finite weight(s) in {name!r} (NaN or inf); the "
                "model would predict nonsense"
            )


def load_model(path: os.PathLike | str) -> tuple[SchNet, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint; returns ``(model in eval mode, checkpoint)``."""
    ckpt = load_checkpoint(path)
    try:
        model = SchNet.from_config(ckpt["config"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        msg = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"model file {path}: architecture and weights disagree: {msg}"
        ) from None
    check_finite(ckpt["state_dict"], path)
    model.eval()
    return model, ckpt
