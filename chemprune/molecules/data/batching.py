"""Vectorised batching of molecules stored as flat arrays (no per-molecule Python objects)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["MoleculeBatch", "MoleculeSet", "batch_indices"]


@dataclass
class MoleculeBatch:
    """Explicit tensors for ``SchNet.forward(z, pos, batch)`` plus targets."""

    z: Tensor
    pos: Tensor
    batch: Tensor
    y: Tensor | None
    index: Tensor

    @property
    def num_molecules(self) -> int:
        return int(self.index.numel())


class MoleculeSet:
    """Molecules as torch tensors: ``z [N]``, ``pos [N, 3]``, ``ptr [M + 1]``, ``y [M]``."""

    def __init__(
        self,
        z: np.ndarray | Tensor,
        pos: np.ndarray | Tensor,
        ptr: np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
    ) -> None:
        self.z = torch.as_tensor(
            np.asarray(z, dtype=np.int64) if isinstance(z, np.ndarray) else z
        ).long()
        self.pos = torch.as_tensor(pos, dtype=torch.float32)
        self.ptr = torch.as_tensor(ptr, dtype=torch.long)
        self.y = None if y is None else torch.as_tensor(y, dtype=torch.float32)
        self.counts = self.ptr[1:] - self.ptr[:-1]

    @property
    def device(self) -> torch.device:
        return self.z.device

    def to(self, device: torch.device | str) -> MoleculeSet:
        """The same molecules with every tensor on ``device`` (batches are then built there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        y = None if self.y is None else self.y.to(device)
        return MoleculeSet(self.z.to(device), self.pos.to(device), self.ptr.to(device), y)

    def __len__(self) -> int:
        return self.ptr.numel() - 1

    def collate(self, index: Tensor | np.ndarray | list[int]) -> MoleculeBatch:
        """Gather molecules ``index`` into one batch (vectorised)."""
        dev = self.z.device
        idx = torch.as_tensor(index, dtype=torch.long).to(dev)
        counts = self.counts[idx]
        batch = torch.repeat_interleave(torch.arange(idx.numel(), device=dev), counts)
        starts = torch.cumsum(counts, 0) - counts
        atoms = torch.arange(int(counts.sum()), device=dev)
        atom = self.ptr[idx][batch] + atoms - starts[batch]
        y = None if self.y is None else self.y[idx]
        return MoleculeBatch(z=self.z[atom], pos=self.pos[atom], batch=batch, y=y, index=idx)

    def batches(
        self,
        indices: np.ndarray | Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        start: int = 0,
    ) -> Iterator[MoleculeBatch]:
        """Iterate over ``indices`` in batches; ``shuffle`` uses a permutation fixed by ``seed``.

        ``start`` skips the first ``start`` batches (used to resume mid-epoch exactly).
        """
        for chunk in batch_indices(indices, batch_size, shuffle=shuffle, seed=seed)[start:]:
            yield self.collate(chunk)


def batch_indices(
    indices: np.ndarray | Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0
) -> list[Tensor]:
    """Split ``indices`` into batches, permuted by a generator seeded with ``seed``."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    if shuffle:
        g = torch.Generator().manual_seed(int(seed))
        idx = idx[torch.randperm(idx.numel(), generator=g)]
    return list(torch.split(idx, batch_size))
