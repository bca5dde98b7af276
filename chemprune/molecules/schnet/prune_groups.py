"""Pruning groups of chemprune's :class:`~chemprune.molecules.models.schnet.SchNet`.

SchNet's data-dependent graph construction cannot be traced by ``torch.fx``, so its groups are
declared here:

* ``filter``: the F filter channels of each interaction block. Zeroing row ``k`` of
  ``filter_network.lin2`` (and its bias) zeroes the filter ``W_k``, so the product
  ``in2f(h)_k * W_k`` vanishes; shrinking also removes row ``k`` of ``in2f`` and column ``k`` of
  ``f2out``. Blocks end up with different widths, which ``SchNet.config()`` records.
* ``filter_hidden``: hidden units of each filter-generating network (``lin1`` rows + bias,
  ``lin2`` columns; ``ssp(0) = 0``).
* ``kernel``: the whole continuous-filter kernel of each block, ``filter`` and ``filter_hidden``
  together: the per-pair work of a block is ``G*H + H*F`` multiply-adds (RBF -> hidden -> filters)
  plus ``F`` for the product, so only removing both widths shrinks it in proportion. With one
  sparsity both parts lose the same share of their units. This is what ``chemprune prune
  --structured`` removes by default.
* ``interaction``: the units of each block's atom-wise layer between the convolution and the
  block output (``f2out`` rows + bias, ``out`` columns).
* ``atom_basis``: the atom-basis width (the residual stream ``h``), one group over the whole
  model: zeroing column ``k`` of the embedding and row ``k`` (+ bias) of every block's ``out``
  keeps ``h_k = 0`` everywhere; shrinking also removes column ``k`` of every ``in2f`` and of the
  output head's first layer.
* ``depth``: each interaction block as one unit (kind ``block``: all of its parameters). A
  block is a residual update ``h <- h + v``, so a block whose output layer is zero changes
  nothing, and :func:`remove_blocks` deletes it: the model keeps fewer blocks, and its
  ``config()`` (so every checkpoint) records the number and the widths of those left.
* ``weight``: every Linear weight, unstructured.

Structured kinds combine with ``+`` (``"filter+atom_basis"``); ``blocks`` limits the per-block
kinds, while ``atom_basis`` always spans the whole model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from chemprune.engines.prune.groups import PruningGroup, Slot, get_param, weight_groups
from chemprune.engines.prune.masks import alive_units, get_masks
from chemprune.engines.prune.shrink import shrink
from chemprune.molecules.models.schnet import SchNet

__all__ = [
    "schnet_groups",
    "expand_kind",
    "remove_blocks",
    "shrink_schnet",
    "schnet_layer_groups",
    "LAYER_FAMILIES",
    "SCHNET_GROUP_KINDS",
    "COMPOSITE_KINDS",
]

SCHNET_GROUP_KINDS = (
    "kernel", "filter", "filter_hidden", "interaction", "atom_basis", "depth", "weight",
)  # fmt: skip
#: composite kinds and the kinds they stand for
COMPOSITE_KINDS = {"kernel": ("filter", "filter_hidden")}


def expand_kind(kind: str) -> list[str]:
    """``"kernel+atom_basis"`` -> ``["filter", "filter_hidden", "atom_basis"]`` (checked)."""
    parts = kind.split("+")
    unknown = [k for k in parts if k not in SCHNET_GROUP_KINDS or k == "weight"]
    kinds = [k for part in parts for k in COMPOSITE_KINDS.get(part, (part,))]
    if unknown or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"unknown SchNet group kind {kind!r}; use one of {SCHNET_GROUP_KINDS} "
            "(structured ones may be joined by '+', each width once)"
        )
    return kinds


def schnet_groups(
    model: SchNet, kind: str = "filter", *, blocks: Iterable[int] | None = None
) -> list[PruningGroup]:
    """Pruning groups of ``model`` (see the module docstring).

    Args:
        model: a chemprune SchNet.
        kind: ``kernel``, ``filter``, ``filter_hidden``, ``interaction``, ``atom_basis`` (or
            several joined by ``+``) or ``weight``.
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
    kinds = expand_kind(kind)
    groups = []
    if "atom_basis" in kinds:
        groups.append(_atom_basis_group(model))
    for b in chosen:
        blk = model.interactions[b]
        p = f"interactions.{b}"
        if "depth" in kinds:
            groups.append(_depth_group(model, b))
        if "filter" in kinds:
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
        if "filter_hidden" in kinds:
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
        if "interaction" in kinds:
            groups.append(
                PruningGroup(
                    name=f"{p}.interaction",
                    kind="channel",
                    size=blk.interaction_channels,
                    mask_slots=(Slot(f"{p}.f2out", "weight", 0), Slot(f"{p}.f2out", "bias", 0)),
                    slots=(
                        Slot(f"{p}.f2out", "weight", 0),
                        Slot(f"{p}.f2out", "bias", 0),
                        Slot(f"{p}.out", "weight", 1),
                    ),
                    tags=("interaction",),
                )
            )
    return groups


#: layer families of SchNet for the rank engines (``--layers``), module names per block
LAYER_FAMILIES = {
    "atomwise": ("in2f", "f2out", "out"),
    "filter_network": ("filter_network.lin1", "filter_network.lin2"),
}


def schnet_layer_groups(
    model: SchNet, families: str = "atomwise+filter_network", *, blocks: Iterable[int] | None = None
) -> list[PruningGroup]:
    """``weight`` groups of the interaction blocks' linear layers of the given families
    (``atomwise``: in2f, f2out, out; ``filter_network``: its two layers; joined by '+'), for
    engines whose unit is a layer's rank. Layers already decomposed are left out."""
    parts = families.split("+")
    unknown = [f for f in parts if f not in LAYER_FAMILIES]
    if unknown or not parts:
        raise ValueError(
            f"unknown layer family {families!r}; use {', '.join(LAYER_FAMILIES)} (or both "
            "joined by '+')"
        )
    n = len(model.interactions)
    chosen = range(n) if blocks is None else sorted(set(blocks))
    names = {f"interactions.{b}.{layer}" for b in chosen for f in parts
             for layer in LAYER_FAMILIES[f]}  # fmt: skip
    return [g for g in weight_groups(model) if g.name in names]


def _depth_group(model: SchNet, b: int) -> PruningGroup:
    """Block ``b`` as one unit: every weight and bias of its Linear layers, whole."""
    p = f"interactions.{b}"
    slots = []
    for name, module in model.interactions[b].named_modules():
        if not isinstance(module, nn.Linear):
            continue
        where = f"{p}.{name}"
        for attr in ("weight", "bias"):
            if getattr(module, attr, None) is not None:
                rows = get_param(model, Slot(where, attr), original=True).shape[0]
                slots.append(Slot(where, attr, 0, rows))
    return PruningGroup(
        name=f"{p}.depth", kind="block", size=1, mask_slots=tuple(slots), tags=("depth",)
    )


@torch.no_grad()
def remove_blocks(model: SchNet, groups: Sequence[PruningGroup] | None = None) -> list[int]:
    """Delete the interaction blocks that contribute nothing, in place; returns their indices.

    A block is removed when its ``depth`` group in ``groups`` is masked off, or (without
    groups) when its output layer's weight and bias are exactly zero, so that ``h + v = h``.
    At least one block is kept. Groups of the model made before the removal name blocks by
    their old indices: make new ones afterwards.
    """
    n = len(model.interactions)
    dead: list[int] = []
    if groups is not None:
        masks = get_masks(model)
        depth = {g.name: g for g in groups if g.kind == "block" and "depth" in g.tags}
        dead = [b for b in range(n) if f"interactions.{b}.depth" in depth
                and not bool(alive_units(model, depth[f"interactions.{b}.depth"], masks).any())]  # fmt: skip
    else:
        for b, blk in enumerate(model.interactions):
            if not bool(blk.out.weight.any()) and not bool(blk.out.bias.any()):
                dead.append(b)
    if len(dead) == n:
        raise ValueError(f"every one of the {n} interaction blocks would go; keep at least one")
    if not dead:
        return []
    kept = [blk for b, blk in enumerate(model.interactions) if b not in dead]
    model.interactions = nn.ModuleList(kept)
    return dead


def shrink_schnet(model: SchNet, groups: Sequence[PruningGroup]) -> dict:
    """Remove what the masks of ``groups`` switched off, for real: the interaction blocks whose
    ``depth`` group is off, then the channels of the other structured groups (masks baked).
    Returns ``{"blocks_removed": [...], "widths": {group: (before, after)}}``."""
    removed = remove_blocks(model, groups)
    live = [g for g in groups if g.kind != "block" and _block(g.name) not in removed]
    return {"blocks_removed": removed, "widths": shrink(model, _renumbered(live, removed))}


def _block(text: str) -> int | None:
    """The interaction block a group or module name belongs to (None: outside the blocks)."""
    m = re.match(r"interactions\.(\d+)(\.|$)", text)
    return int(m.group(1)) if m else None


def _renumbered(groups: Sequence[PruningGroup], removed: Sequence[int]) -> list[PruningGroup]:
    """``groups`` with block indices in their names and slots shifted past removed blocks
    (slices of removed blocks dropped)."""
    if not removed:
        return list(groups)

    def shift(text: str) -> str:
        b = _block(text)
        if b is None:
            return text
        return re.sub(r"^interactions\.\d+", f"interactions.{b - sum(r < b for r in removed)}",
                      text)  # fmt: skip

    def moved(slots):
        return tuple(dataclasses.replace(s, module=shift(s.module)) for s in slots
                     if _block(s.module) not in removed)  # fmt: skip

    return [
        dataclasses.replace(g, name=shift(g.name), slots=moved(g.slots),
                            mask_slots=moved(g.mask_slots))
        for g in groups
    ]  # fmt: skip


def _atom_basis_group(model: SchNet) -> PruningGroup:
    outs = [f"interactions.{b}.out" for b in range(len(model.interactions))]
    mask_slots = (Slot("embedding", "weight", 1),)
    mask_slots += tuple(Slot(m, p, 0) for m in outs for p in ("weight", "bias"))
    consumers = tuple(Slot(f"interactions.{b}.in2f", "weight", 1) for b in range(len(outs)))
    return PruningGroup(
        name="atom_basis",
        kind="channel",
        size=model.hidden_channels,
        mask_slots=mask_slots,
        slots=mask_slots + consumers + (Slot("lin1", "weight", 1),),
        tags=("atom_basis",),
    )
