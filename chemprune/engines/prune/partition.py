"""Partitions of pruning groups into threshold sets (one threshold per set).

Strategies: ``"global"`` (one set), ``"layer"`` (one set per group), ``"type"`` (by the group's
first tag, e.g. the layer class), a callable ``group -> set name``, or an explicit mapping
``set name -> [group names]``. Every group must land in exactly one set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from chemprune.engines.prune.groups import PruningGroup

__all__ = ["partition_groups", "Partition"]

Partition = dict[str, list[str]]


def partition_groups(
    groups: Sequence[PruningGroup],
    strategy: str | Callable[[PruningGroup], str] | Mapping[str, Sequence[str]] = "layer",
) -> Partition:
    """Threshold sets (name -> group names); raises if a group is missing or repeated."""
    names = [g.name for g in groups]
    if isinstance(strategy, str):
        if strategy == "global":
            return {"global": names}
        if strategy == "layer":
            return {n: [n] for n in names}
        if strategy == "type":
            return _by(groups, lambda g: g.tags[0] if g.tags else g.kind)
        raise ValueError(
            f"unknown grouping strategy {strategy!r}; use global, layer, type, a function or a mapping"
        )
    if callable(strategy):
        return _by(groups, strategy)
    out = {str(k): list(v) for k, v in strategy.items()}
    seen = [n for members in out.values() for n in members]
    missing = sorted(set(names) - set(seen))
    unknown = sorted(set(seen) - set(names))
    repeated = sorted({n for n in seen if seen.count(n) > 1})
    if missing or unknown or repeated:
        raise ValueError(
            f"the grouping does not partition the groups exactly once: missing {missing}, "
            f"unknown {unknown}, repeated {repeated}"
        )
    return out


def _by(groups: Sequence[PruningGroup], key: Callable[[PruningGroup], str]) -> Partition:
    out: Partition = {}
    for g in groups:
        out.setdefault(str(key(g)), []).append(g.name)
    return out
