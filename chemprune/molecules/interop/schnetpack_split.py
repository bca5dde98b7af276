"""schnetpack's ``split.npz`` (indices into all 133,885 QM9 molecules) as rows of chemprune's data.

schnetpack 0.x indexes the full QM9 in its original order: index ``i`` is molecule
``dsgdb9nsd_{i+1:06d}``. qm9pack lacks the 3,054 uncharacterised molecules, so the indices are
mapped through molecule numbers (:attr:`chemprune.molecules.data.qm9.QM9Data.ids`) and the missing ones
dropped (and counted). The result is stored in a checkpoint as an explicit split
(``"kind": "explicit"``, train indices included), which
:func:`chemprune.pipeline.compress_schnet.split_from_checkpoint` reads back as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chemprune.common.atomic import CheckpointError

__all__ = ["QM9_FULL_SIZE", "PARTS", "read_schnetpack_split", "map_to_rows", "explicit_split_dict"]

#: molecules in the original QM9 (``dsgdb9nsd_000001`` ... ``dsgdb9nsd_133885``)
QM9_FULL_SIZE = 133_885
#: chemprune part name -> schnetpack key
PARTS = {"train": "train_idx", "val": "val_idx", "test": "test_idx"}


def read_schnetpack_split(path: os.PathLike | str) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` 0-based indices of a schnetpack ``split.npz`` (checked).

    Raises:
        CheckpointError: one line for a missing key, non-integer, out-of-range or repeated
            indices, or parts that overlap (an ambiguous split).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [k for k in PARTS.values() if k not in keys]
            if missing:
                raise CheckpointError(f"split file {path} has no {', '.join(missing)}")
            raw = {part: np.asarray(npz[key]) for part, key in PARTS.items()}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"split file {path} is not a readable .npz: {msg}") from None
    parts: dict[str, np.ndarray] = {}
    for part, idx in raw.items():
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise CheckpointError(f"split file {path}: {PARTS[part]} is not a 1-D integer array")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= QM9_FULL_SIZE):
            raise CheckpointError(
                f"split file {path}: {PARTS[part]} has indices outside 0..{QM9_FULL_SIZE - 1}"
            )
        if len(np.unique(idx)) != len(idx):
            raise CheckpointError(f"split file {path}: {PARTS[part]} repeats molecules")
        parts[part] = idx
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        n = len(np.intersect1d(parts[a], parts[b]))
        if n:
            raise CheckpointError(
                f"split file {path}: {PARTS[a]} and {PARTS[b]} share {n} molecules"
            )
    return parts


def map_to_rows(
    parts: dict[str, np.ndarray], ids: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Rows of a data set with molecule numbers ``ids`` for each part, in the file's order.

    Returns:
        ``(rows per part, molecules missing from the data set per part)``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 1 or ids.max() > QM9_FULL_SIZE):
        raise ValueError("molecule numbers outside 1..133885: not QM9")
    row_of = np.full(QM9_FULL_SIZE + 1, -1, dtype=np.int64)
    row_of[ids] = np.arange(len(ids))
    rows, missing = {}, {}
    for part, idx in parts.items():
        r = row_of[idx + 1]
        rows[part] = r[r >= 0]
        missing[part] = int((r < 0).sum())
    return rows, missing


def explicit_split_dict(
    rows: dict[str, np.ndarray], source: str, *, origin: str, missing: dict[str, int]
) -> dict[str, Any]:
    """The checkpoint's ``data`` section for an explicit (imported) split."""
    return {
        "source": source,
        "split": {
            "kind": "explicit",
            "origin": origin,
            "sizes": [len(rows[p]) for p in ("train", "val", "test")],
            "missing": {p: int(missing[p]) for p in ("train", "val", "test")},
            **{p: torch.as_tensor(rows[p], dtype=torch.int32) for p in ("train", "val", "test")},
        },
    }
