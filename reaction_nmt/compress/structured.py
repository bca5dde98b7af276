"""Structured pruning of attention heads and feed-forward units, removed for real.

*Score*: a head is scored by the L2 norm (root mean square) of its rows of Q, K and V and its
columns of the output projection; a feed-forward unit by its row of ``w_1`` (and ``w_3``) and
column of ``w_2`` (:func:`chemprune.engines.prune.magnitude.magnitude_scores`, ``norm=2``). *Apply*: the
same number of heads (units) is kept in every layer, the highest-scoring ones; masking zeroes
those slices, so a masked head or unit adds exactly nothing. *Remove*:
:func:`chemprune.engines.prune.shrink` slices the weights; ``head_count`` of each attention module
follows (``dim_per_head`` is unchanged).

Why the same number per layer: the feed-forward width can then be written as OpenNMT-py's own
``transformer_ff`` (a plain checkpoint, loadable anywhere). Heads cannot: OpenNMT-py derives
``dim_per_head = hidden_size // heads``, so fewer heads of the original width is not a plain
configuration; :func:`shrunk_opt` records the shapes in the checkpoint's ``opt`` and
:func:`~reaction_nmt.compress.hooks.onmt_hooks` rebuilds them when OpenNMT-py loads the model.
Per-layer counts would use the same record; they are left for later.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.prune.base import select_units
from chemprune.engines.prune.groups import PruningGroup, Slot
from chemprune.engines.prune.magnitude import magnitude_scores
from chemprune.engines.prune.masks import apply_masks, group_masks
from chemprune.engines.prune.shrink import shrink
from reaction_nmt.compress.errors import CompressError
from reaction_nmt.compress.groups import layer_tag

__all__ = [
    "head_groups",
    "ff_groups",
    "keep_count",
    "structured_keep",
    "mask_structured",
    "remove_structured",
    "shrunk_opt",
]


def _attention_modules(model: nn.Module):
    for name, m in model.named_modules():
        if all(
            hasattr(m, a) for a in ("linear_query", "linear_keys", "linear_values", "head_count")
        ):
            if getattr(m, "num_kv", 0) or getattr(m, "relative_attention_bias", None) is not None:
                raise CompressError(f"{name}: head removal needs plain multi-head attention")
            if getattr(m, "relative_positions_embeddings", None) is not None:
                raise CompressError(
                    f"{name}: head removal with relative positions is not supported"
                )
            yield name, m


def _linear_slots(module: str, linear: nn.Linear, dim: int, repeat: int = 1) -> list[Slot]:
    slots = [Slot(module, "weight", dim, repeat)]
    if dim == 0 and linear.bias is not None:
        slots.append(Slot(module, "bias", 0, repeat))
    return slots


def head_groups(model: nn.Module) -> list[PruningGroup]:
    """One channel group per attention module; a unit is a head (``dim_per_head`` rows)."""
    groups = []
    for name, attn in _attention_modules(model):
        d = attn.dim_per_head
        slots = []
        for lin in ("linear_query", "linear_keys", "linear_values"):
            slots += _linear_slots(f"{name}.{lin}", getattr(attn, lin), 0, d)
        slots += _linear_slots(f"{name}.final_linear", attn.final_linear, 1, d)
        groups.append(
            PruningGroup(
                name=name, kind="channel", size=attn.head_count, mask_slots=tuple(slots),
                tags=("heads", layer_tag(name)),
            )
        )  # fmt: skip
    return groups


def ff_groups(model: nn.Module) -> list[PruningGroup]:
    """One channel group per feed-forward block; a unit is a hidden unit."""
    groups = []
    for name, ff in model.named_modules():
        if not (hasattr(ff, "w_1") and hasattr(ff, "w_2")):
            continue
        slots = _linear_slots(f"{name}.w_1", ff.w_1, 0)
        if getattr(ff, "w_3", None) is not None:
            slots += _linear_slots(f"{name}.w_3", ff.w_3, 0)
        slots += _linear_slots(f"{name}.w_2", ff.w_2, 1)
        groups.append(
            PruningGroup(
                name=name, kind="channel", size=ff.w_1.out_features, mask_slots=tuple(slots),
                tags=("ff", layer_tag(name)),
            )
        )  # fmt: skip
    return groups


def keep_count(keep: float, size: int, what: str) -> int:
    """Units kept out of ``size``: an ``int`` count (>= 1), or a ``float`` fraction in (0, 1]."""
    if isinstance(keep, float):
        if not 0 < keep <= 1:
            raise CompressError(f"--keep-{what} fraction must be in (0, 1], got {keep}")
        return max(1, math.ceil(keep * size - 1e-9))
    n = int(keep)
    if not 1 <= n <= size:
        raise CompressError(f"--keep-{what} must be between 1 and {size}, got {keep}")
    return n


def structured_keep(
    model: nn.Module, groups: Sequence[PruningGroup], keep: Mapping[str, float]
) -> dict[PruningGroup, Tensor]:
    """Keep-vectors of the highest-scoring units, the same count in every group of a kind.

    ``keep`` maps the tag (``heads``, ``ff``) to a count or a fraction.
    """
    scores = magnitude_scores(model, groups, 2.0)
    sparsity = {}
    for g in groups:
        n = keep_count(keep[g.tags[0]], g.size, g.tags[0])
        sparsity[g.name] = (g.size - n) / g.size
    sel = select_units(scores, groups, sparsity, scope="layer")
    for g, k in sel.items():  # exact counts even where the rounding of a fraction slips
        n = keep_count(keep[g.tags[0]], g.size, g.tags[0])
        if int(k.sum()) != n:
            order = torch.argsort(scores[g.name], descending=True, stable=True)
            k.zero_()
            k[order[:n]] = True
    return sel


def mask_structured(model: nn.Module, keep: Mapping[PruningGroup, Tensor]) -> None:
    """Zero the slices of the dropped heads/units (masks, as for any chemprune pruner)."""
    apply_masks(model, group_masks(model, keep))


def remove_structured(model: nn.Module, groups: Sequence[PruningGroup]) -> dict[str, tuple]:
    """Physically remove masked heads/units; returns ``{group: (before, after)}``."""
    report = shrink(model, groups)
    for _name, attn in _attention_modules(model):
        attn.head_count = attn.linear_query.out_features // attn.dim_per_head
    return report


def shrunk_opt(opt, model: nn.Module, built_shapes: Mapping[str, Sequence[int]]):
    """A copy of a checkpoint's ``opt`` describing ``model``'s (shrunk) shapes.

    ``built_shapes`` are the shapes OpenNMT-py builds from ``opt`` (parameter name -> shape).
    A feed-forward width equal in every layer becomes ``transformer_ff``; other differences
    go to ``compress_shapes`` / ``compress_heads`` (read by ``onmt_hooks``).
    """
    new = copy.copy(opt)
    shapes = {k: list(v.shape) for k, v in model.named_parameters(remove_duplicate=False)}
    widths = {s[0] for k, s in shapes.items() if k.endswith(".w_1.weight")}
    if len(widths) == 1:
        ff = widths.pop()
        if ff != getattr(opt, "transformer_ff", ff):
            built_shapes = {
                k: ([ff, s[1]] if k.endswith((".w_1.weight", ".w_3.weight")) else
                    [s[0], ff] if k.endswith(".w_2.weight") else
                    [ff] if k.endswith((".w_1.bias", ".w_3.bias")) else list(s))
                for k, s in built_shapes.items()
            }  # fmt: skip
            new.transformer_ff = ff
    old = dict(getattr(opt, "compress_shapes", None) or {})  # an already shrunk model
    new.compress_shapes = {
        k: s
        for k, s in shapes.items()
        if k in old or (k in built_shapes and list(built_shapes[k]) != s)
    }
    heads = {name: int(a.head_count) for name, a in _attention_modules(model)}
    new.compress_heads = {n: h for n, h in heads.items() if h != getattr(opt, "heads", h)}
    if not new.compress_shapes:
        del new.compress_shapes
    if not new.compress_heads:
        del new.compress_heads
    return new
