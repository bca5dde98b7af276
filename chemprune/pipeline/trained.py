"""A trained checkpoint with the data it was trained on and its split (:func:`load_trained`):
what ``chemprune prune``, ``search``, ``evaluate`` and ``tabulate`` and the benchmarks start
from, loaded and checked the same way everywhere.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.splits import Split
from chemprune.molecules.models.schnet import SchNet

__all__ = ["Trained", "load_trained"]


@dataclass(frozen=True)
class Trained:
    """A loaded checkpoint (``model``, the raw ``ckpt``), its data set (``data``, described by
    ``source``), the molecule ids its split records (``parts``: checked against the data set;
    ``None`` when it records none), its ``target`` and the molecules with that target
    (``mset``). :attr:`split` rebuilds the run's :class:`Split` when first asked."""

    model: SchNet
    ckpt: dict[str, Any]
    data: Any
    source: str
    parts: dict[str, np.ndarray] | None
    target: dict[str, Any]
    mset: MoleculeSet

    @functools.cached_property
    def split(self) -> Split:
        """The run's split (:func:`~chemprune.pipeline.compress_schnet.split_from_checkpoint`;
        ``ValueError`` when the checkpoint records none or it cannot be reproduced)."""
        from chemprune.pipeline.compress_schnet import split_from_checkpoint

        return split_from_checkpoint(self.ckpt, len(self.data))


def load_trained(
    path: os.PathLike | str,
    data_dir: os.PathLike | str | None = None,
    *,
    before_data: Callable[[SchNet, dict[str, Any], dict[str, np.ndarray] | None], None]
    | None = None,
) -> Trained:
    """Load the checkpoint at ``path``, check its split (a malformed one before the data set is
    read), read its data set (``data_dir``; default: qm9pack), check the split's ids against
    it, and gather the molecules with the checkpoint's target.

    ``before_data(model, ckpt, parts)`` runs once the checkpoint is loaded and its split
    checked, before the data set is read: a command's own refusals (no split, a model of the
    wrong kind) come first, as they do without the data.

    Raises:
        CheckpointError: the checkpoint cannot be loaded, or its split is invalid or names
            molecules the data set does not have (:func:`checkpoint_split`).
    """
    from chemprune.molecules.checkpoint import checkpoint_split, load_model
    from chemprune.molecules.data.qm9 import load_dataset

    model, ckpt = load_model(path)
    parts = checkpoint_split(ckpt, path)  # a malformed split, before the data set is read
    if before_data is not None:
        before_data(model, ckpt, parts)
    data, source, _ = load_dataset(data_dir)
    parts = checkpoint_split(ckpt, path, len(data), source)
    target = ckpt["target"]
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(target["name"]))
    return Trained(model=model, ckpt=ckpt, data=data, source=source, parts=parts, target=target,
                   mset=mset)  # fmt: skip
