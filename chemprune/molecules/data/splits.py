"""Seeded train/validation/test splits, saved to disk so a run can be repeated exactly."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from chemprune.molecules.data.qm9 import QM9Data

__all__ = [
    "InvalidSplit",
    "Split",
    "check_split",
    "make_split",
    "standard_sizes",
    "subset_sizes",
    "load_or_create_split",
    "load_dataset_and_split",
]

#: The split used by SchNet, DimeNet and most QM9 papers: 110k train, 10k validation, rest test.
STANDARD_TRAIN = 110_000
STANDARD_VAL = 10_000


@dataclass(frozen=True)
class Split:
    """Molecule indices of each part (int64, disjoint)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def __post_init__(self) -> None:
        parts = np.concatenate([self.train, self.val, self.test])
        if len(np.unique(parts)) != len(parts):
            raise ValueError("split parts overlap")

    def part(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split part {name!r}; choose train, val or test")
        return getattr(self, name)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


class InvalidSplit(ValueError):
    """A split recorded in a checkpoint is malformed; ``what`` says how (one line)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the checkpoint has an invalid split: {what}")
        self.what = what


_PARTS = ("train", "val", "test")


def _ids(name: str, value) -> np.ndarray:
    import torch

    if not isinstance(value, torch.Tensor):
        raise InvalidSplit(f"{name} is a {type(value).__name__}, not a tensor of molecule ids")
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise InvalidSplit(
            f"{name} ids are {str(value.dtype).removeprefix('torch.')}, not integers"
        )
    if value.dim() != 1:
        raise InvalidSplit(f"{name} ids form a {value.dim()}-D tensor, not a list")
    if value.numel() == 0:
        raise InvalidSplit(f"{name} is empty")
    ids = value.numpy().astype(np.int64)
    if ids.min() < 0:
        raise InvalidSplit(f"{name} holds the negative id {int(ids.min())}")
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        raise InvalidSplit(f"{name} repeats id {int(uniq[counts > 1][0])}")
    return ids


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidSplit(f"{name} is {_short(value)}, not an integer >= {low}")
    return value


def check_split(info) -> dict[str, np.ndarray]:
    """The molecule ids of a checkpoint's split record (``ckpt["data"]["split"]``), checked.

    A seeded record (``seed``, ``sizes``, ``val``, ``test``) or an explicit one (``"kind":
    "explicit"``, with ``train`` too; ``sizes`` optional) is accepted when every part is a 1-D
    integer tensor, non-empty, with no negative or repeated id, no id in two parts, and as many
    ids as ``sizes`` says. (Whether the ids exist in a data set is the caller's check: an id
    beyond its end means other data more often than a damaged file.)

    Returns:
        ``{part: int64 ids}`` for the parts recorded (``train`` for an explicit split only).

    Raises:
        InvalidSplit: ``"the checkpoint has an invalid split: <what>"`` (``.what`` alone).
    """
    if not isinstance(info, dict):
        raise InvalidSplit(f"it is a {type(info).__name__}, not a mapping")
    kind = info.get("kind")
    if kind not in (None, "explicit"):
        raise InvalidSplit(f"unknown kind {_short(kind)} (expected 'explicit' or none)")
    names = _PARTS if kind == "explicit" else _PARTS[1:]
    missing = [p for p in names if p not in info]
    if missing:
        raise InvalidSplit(f"no {missing[0]} ids")
    parts = {p: _ids(p, info[p]) for p in names}
    if kind is None:
        if "seed" not in info or "sizes" not in info:
            raise InvalidSplit("a seeded split needs its seed and sizes")
        _count("seed", info["seed"], low=0)
    sizes = info.get("sizes")
    if sizes is not None:
        if not isinstance(sizes, (list, tuple)) or len(sizes) != 3:
            raise InvalidSplit(f"sizes is {_short(sizes)}, not three counts (train, val, test)")
        for p, n in zip(_PARTS, sizes, strict=True):
            _count(f"the {p} size", n, low=1)
            if p in parts and len(parts[p]) != n:
                raise InvalidSplit(f"{p} has {len(parts[p])} ids, its recorded size is {n}")
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = np.intersect1d(parts[a], parts[b], assume_unique=True)
            if len(both):
                raise InvalidSplit(f"id {int(both[0])} is in both {a} and {b}")
    return parts


def standard_sizes(num_molecules: int) -> tuple[int, int, int]:
    """110,000 / 10,000 / rest (10,831 for the full QM9)."""
    rest = num_molecules - STANDARD_TRAIN - STANDARD_VAL
    if rest <= 0:
        raise ValueError(
            f"the standard split needs more than 120,000 molecules, got {num_molecules}"
        )
    return STANDARD_TRAIN, STANDARD_VAL, rest


def subset_sizes(subset: int, num_molecules: int) -> tuple[int, int, int]:
    """A random subset of ``subset`` molecules split 80/10/10."""
    if not 10 <= subset <= num_molecules:
        raise ValueError(f"--subset must be between 10 and {num_molecules}, got {subset}")
    n_val = max(1, subset // 10)
    n_test = max(1, subset // 10)
    return subset - n_val - n_test, n_val, n_test


def make_split(num_molecules: int, sizes: tuple[int, int, int], seed: int) -> Split:
    """A seeded random split (NumPy PCG64 permutation)."""
    n_train, n_val, n_test = sizes
    if min(sizes) < 1 or sum(sizes) > num_molecules:
        raise ValueError(f"split sizes {sizes} do not fit {num_molecules} molecules")
    perm = np.random.default_rng(seed).permutation(num_molecules)
    return Split(
        train=np.sort(perm[:n_train]),
        val=np.sort(perm[n_train : n_train + n_val]),
        test=np.sort(perm[n_train + n_val : n_train + n_val + n_test]),
        seed=seed,
    )


def split_path(folder: os.PathLike | str, sizes: tuple[int, int, int], seed: int) -> Path:
    n_train, n_val, n_test = sizes
    return Path(folder) / f"split_{n_train}_{n_val}_{n_test}_seed{seed}.npz"


def load_or_create_split(
    folder: os.PathLike | str, num_molecules: int, sizes: tuple[int, int, int], seed: int
) -> tuple[Split, Path]:
    """Load the saved split with these sizes and seed, or create and save it."""
    path = split_path(folder, sizes, seed)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                split = Split(train=npz["train"], val=npz["val"], test=npz["test"], seed=seed)
            if (
                split.sizes == tuple(sizes)
                and max(map(np.max, (split.train, split.val, split.test))) < num_molecules
            ):
                return split, path
        except (OSError, ValueError, KeyError):
            pass
    split = make_split(num_molecules, sizes, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, train=split.train, val=split.val, test=split.test)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(
        json.dumps({"seed": seed, "sizes": list(sizes), "num_molecules": num_molecules})
    )
    return split, path


def load_dataset_and_split(
    data_dir: os.PathLike | str | None, subset: int | None, seed: int
) -> tuple[QM9Data, Split, str]:
    """QM9 (:func:`chemprune.molecules.data.qm9.load_dataset`) with its source and split: the
    ``subset`` sizes when given, else the standard sizes for full QM9, else all of a small
    dataset (made once and saved next to the data, :func:`load_or_create_split`)."""
    from chemprune.molecules.data.qm9 import load_dataset

    data, source, folder = load_dataset(data_dir)
    if subset is not None:
        sizes = subset_sizes(subset, len(data))
    elif len(data) > 120_000:
        sizes = standard_sizes(len(data))
    else:
        sizes = subset_sizes(len(data), len(data))
    split, _ = load_or_create_split(folder, len(data), sizes, seed)
    return data, split, source
