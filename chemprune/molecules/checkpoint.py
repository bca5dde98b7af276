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
(:func:`chemprune.common.atomic.unpickling_refusal` says which object), and no message suggests loading it otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chemprune import __version__
from chemprune.common.atomic import (
    CheckpointError,
    check_finite,
    load_weights_file,
    weights_digest,
)
from chemprune.molecules.models.schnet import SchNet

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "checkpoint_split",
    "load_checkpoint",
    "load_model",
    "model_checkpoint",
]

FORMAT = "chemprune.schnet"
FORMAT_VERSION = 1


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
    (:func:`chemprune.molecules.data.splits.check_split`); ``None`` when it records none.

    With ``num_molecules`` (the data set's size) every id must also be below it: an id beyond
    is ``invalid`` when ``source`` (the data set's description) is the one the checkpoint
    records, and otherwise most likely means the model was trained on other data.

    Raises:
        CheckpointError: ``checkpoint <path> has an invalid split: <what>`` (negative, float,
            repeated or shared ids, an empty part, sizes that disagree, ids beyond the end of
            its own data set), or ``model file <path> was trained on other data (<source>):
            its split names molecule <i>, this data set has <n>; pass its --data-dir``.
    """
    from chemprune.molecules.data.splits import InvalidSplit, check_split

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
