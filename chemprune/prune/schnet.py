"""Pruning groups of chemprune's :class:`~chemprune.models.schnet.SchNet`.

SchNet's data-dependent graph construction cannot be traced by ``torch.fx``, so its groups are
declared here:

* ``filter``: the F filter channels of each interaction block. Zeroing row ``k`` of
  ``filter_network.lin2`` (and its bias) zeroes the filter ``W_k``, so the product
  ``in2f(h)_k * W_k`` vanishes; shrinking also removes row ``k`` of ``in2f`` and column ``k`` of
  ``f2out``. Blocks end up with different widths, which ``SchNet.config()`` records.
* ``filter_hidden``: hidden units of each filter-generating network (``lin1`` rows + bias,
  ``lin2`` columns; ``ssp(0) = 0``).
* ``weight``: every Linear weight, unstructured.
"""

from __future__ import annotations

from collections.abc import Iterable

from chemprune.models.schnet import SchNet
from chemprune.prune.groups import PruningGroup, Slot, weight_groups

__all__ = ["schnet_groups", "SCHNET_GROUP_KINDS"]

SCHNET_GROUP_KINDS = ("filter", "filter_hidden", "weight")


def schnet_groups(
    model: SchNet, kind: str = "filter", *, blocks: Iterable[int] | None = None
) -> list[PruningGroup]:
    """Pruning groups of ``model`` (see the module docstring).

    Args:
        model: a chemprune SchNet.
        kind: ``filter``, ``filter_hidden`` or ``weight``.
        blocks: interaction blocks to include (default: all).
    """
    if not isinstance(model, SchNet):
        raise TypeError(f"expected a chemprune SchNet, got {type(model).__name__}")
    n = len(model.interactions)
    chosen = list(range(n)) if blocks is None else sorted(set(blocks))
    bad = [b for b in chosen if not 0 <= b < n]
    if bad:
        raise ValueError(f"blocks {bad} do not exist (the model has {n} interaction blocks)")
    if kind == "weight":
        prefixes = tuple(f"interactions.{b}." for b in chosen)
        names = [name for name, _ in model.named_modules() if name.startswith(prefixes)]
        skip = [
            name
            for name, _ in model.named_modules()
            if name.startswith("interactions.") and name not in names
        ]
        return weight_groups(model, exclude=skip)
    groups = []
    for b in chosen:
        blk = model.interactions[b]
        p = f"interactions.{b}"
        if kind == "filter":
            groups.append(
                PruningGroup(
                    name=f"{p}.filters",
                    kind="channel",
                    size=blk.filter_channels,
                    mask_slots=(
                        Slot(f"{p}.filter_network.lin2", "weight", 0),
                        Slot(f"{p}.filter_network.lin2", "bias", 0),
                    ),
                    slots=(
                        Slot(f"{p}.filter_network.lin2", "weight", 0),
                        Slot(f"{p}.filter_network.lin2", "bias", 0),
                        Slot(f"{p}.in2f", "weight", 0),
                        Slot(f"{p}.f2out", "weight", 1),
                    ),
                    tags=("filter",),
                )
            )
        elif kind == "filter_hidden":
            groups.append(
                PruningGroup(
                    name=f"{p}.filter_hidden",
                    kind="channel",
                    size=blk.filter_network.hidden_channels,
                    mask_slots=(
                        Slot(f"{p}.filter_network.lin1", "weight", 0),
                        Slot(f"{p}.filter_network.lin1", "bias", 0),
                    ),
                    slots=(
                        Slot(f"{p}.filter_network.lin1", "weight", 0),
                        Slot(f"{p}.filter_network.lin1", "bias", 0),
                        Slot(f"{p}.filter_network.lin2", "weight", 1),
                    ),
                    tags=("filter_hidden",),
                )
            )
        else:
            raise ValueError(f"unknown SchNet group kind {kind!r}; use one of {SCHNET_GROUP_KINDS}")
    return groups
