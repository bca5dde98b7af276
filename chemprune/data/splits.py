"""Seeded train/validation/test splits, saved to disk so a run can be repeated exactly."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Split", "make_split", "standard_sizes", "subset_sizes", "load_or_create_split"]

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
