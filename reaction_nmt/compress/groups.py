"""Weight groups of an OpenNMT-py transformer and the grouping strategies that share thresholds.

Every weight matrix of an ``NMTModel`` with its generator (embeddings, attention Q/K/V/O,
feed-forward layers, generator; not biases, layer norms or positional encodings) becomes one
unstructured :class:`~chemprune.engines.prune.groups.PruningGroup` named after its module, tagged with
its type and its layer (``enc0``, ``dec1``, ``embeddings``, ``generator``). A weight shared by
several modules (``share_embeddings``) is one group, named after its first module; its other
names are kept as aliases so that specs may use either.

Strategies (one magnitude threshold per set, see :class:`~chemprune.engines.prune.olmp.OLMPPruner`):

* ``global``: one set;
* ``layer``: one set per transformer layer (plus ``embeddings`` and ``generator``);
* ``type``: one set per type (``embeddings``, ``attn_q``, ``attn_k``, ``attn_v``, ``attn_o``,
  ``ff``, ``generator``);
* ``layer_type``: layer x type (``enc0/attn_q``...);
* ``matrix``: one set per weight matrix;
* a custom spec: a mapping ``set name -> [glob patterns over parameter names]`` (JSON or YAML
  file), e.g. ``{"attention": ["*attn.linear_*.weight", "*.final_linear.weight"], "rest":
  ["*"]}``; a weight matched by patterns of two sets, or by none, is an error.

Only names and shapes are read, so this module does not import OpenNMT-py.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torch import nn

from chemprune.engines.prune.groups import PruningGroup, Slot
from chemprune.engines.prune.partition import Partition, partition_groups
from reaction_nmt.compress.errors import CompressError

__all__ = [
    "STRATEGIES",
    "TYPES",
    "transformer_groups",
    "group_aliases",
    "partition",
    "read_spec",
    "spec_partition",
]

STRATEGIES = ("global", "layer", "type", "layer_type", "matrix")
TYPES = ("embeddings", "attn_q", "attn_k", "attn_v", "attn_o", "ff", "generator")

_TYPE_OF = {
    "linear_query": "attn_q",
    "linear_keys": "attn_k",
    "linear_values": "attn_v",
    "final_linear": "attn_o",
    "w_1": "ff",
    "w_2": "ff",
    "w_3": "ff",
}
_LAYER = re.compile(r"^(encoder|decoder)\.(?:transformer|transformer_layers)\.(\d+)\.")


def weight_type(module_name: str) -> str:
    """Type tag of the module owning a weight matrix (see the module docstring)."""
    if module_name == "generator" or module_name.startswith("generator."):
        return "generator"
    if ".embeddings." in f".{module_name}.":
        return "embeddings"
    leaf = module_name.rsplit(".", 1)[-1]
    if leaf in _TYPE_OF:
        return _TYPE_OF[leaf]
    raise CompressError(f"weight of module {module_name!r} has no known transformer type")


def layer_tag(module_name: str) -> str:
    """``enc3``, ``dec0``, ``embeddings`` or ``generator``."""
    m = _LAYER.match(module_name)
    if m:
        return f"{m.group(1)[:3]}{m.group(2)}"
    return weight_type(module_name)


def _weight_owners(model: nn.Module) -> dict[int, list[str]]:
    """Module names owning each distinct ``weight`` matrix (by identity), in model order."""
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if not isinstance(module, nn.Linear | nn.Embedding):
            continue
        w = module.weight
        if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
            w = module.parametrizations["weight"].original
        if w.dim() < 2:
            continue
        owners.setdefault(id(w), [])
        if name not in owners[id(w)]:
            owners[id(w)].append(name)
    return owners


def transformer_groups(model: nn.Module) -> list[PruningGroup]:
    """One unstructured group per distinct weight matrix; tags ``(type, layer)``."""
    groups = []
    for names in _weight_owners(model).values():
        name = names[0]
        w = model.get_submodule(name).weight
        groups.append(
            PruningGroup(
                name=name,
                kind="weight",
                size=w.numel(),
                mask_slots=(Slot(name, "weight"),),
                tags=(weight_type(name), layer_tag(name)),
            )
        )
    if not groups:
        raise CompressError(f"{type(model).__name__} has no weight matrices to prune")
    return groups


def group_aliases(model: nn.Module) -> dict[str, list[str]]:
    """Group name -> every parameter name of its weight (``module.weight``), first its own."""
    return {names[0]: [f"{n}.weight" for n in names] for names in _weight_owners(model).values()}


def _strategy_key(strategy: str) -> Callable[[PruningGroup], str]:
    if strategy == "layer":
        return lambda g: g.tags[1]
    if strategy == "type":
        return lambda g: g.tags[0]
    if strategy == "layer_type":
        return lambda g: g.tags[0] if g.tags[1] == g.tags[0] else f"{g.tags[1]}/{g.tags[0]}"
    raise CompressError(f"unknown grouping strategy {strategy!r}; use one of {STRATEGIES}")


def read_spec(path: Path) -> dict[str, list[str]]:
    """A custom grouping spec (JSON or YAML): set name -> list of glob patterns."""
    path = Path(path)
    if not path.is_file():
        raise CompressError(f"grouping spec {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - json and yaml raise different types
        from reaction_nmt.presets import yaml_error_text

        raise CompressError(
            f"grouping spec {path} cannot be read: {yaml_error_text(err)}"
        ) from None
    return _check_spec(spec, str(path))


def _check_spec(spec, where: str) -> dict[str, list[str]]:
    if not isinstance(spec, Mapping) or not spec:
        raise CompressError(f"grouping spec {where}: expected a mapping set name -> patterns")
    out = {}
    for name, patterns in spec.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, Sequence) or not patterns:
            raise CompressError(f"grouping spec {where}: set {name!r} needs a list of patterns")
        if not all(isinstance(p, str) and p for p in patterns):
            raise CompressError(f"grouping spec {where}: set {name!r} has a non-string pattern")
        out[str(name)] = list(patterns)
    return out


def spec_partition(
    groups: Sequence[PruningGroup],
    spec: Mapping[str, Sequence[str]],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Partition:
    """Sets from glob patterns over parameter names; every weight in exactly one set."""
    spec = _check_spec(spec, "")
    aliases = aliases or {}
    out: Partition = {name: [] for name in spec}
    twice, never = [], []
    for g in groups:
        names = list(aliases.get(g.name, [f"{g.name}.weight"]))
        hits = [
            s for s, patterns in spec.items()
            if any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)
        ]  # fmt: skip
        if len(hits) > 1:
            twice.append(f"{names[0]} ({', '.join(hits)})")
        elif not hits:
            never.append(names[0])
        else:
            out[hits[0]].append(g.name)
    empty = [s for s, members in out.items() if not members]
    if twice or never or empty:
        parts = []
        if twice:
            parts.append(f"matched by two sets: {', '.join(twice)}")
        if never:
            parts.append(f"matched by no set: {', '.join(never)}")
        if empty:
            parts.append(f"sets matching nothing: {', '.join(empty)}")
        raise CompressError("grouping spec does not cover every weight once; " + "; ".join(parts))
    return out


def partition(
    groups: Sequence[PruningGroup],
    strategy: str | Mapping[str, Sequence[str]],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Partition:
    """Threshold sets for a strategy name or a custom spec (checked to cover each group once)."""
    if isinstance(strategy, Mapping):
        sets = spec_partition(groups, strategy, aliases)
    elif strategy == "global":
        sets = partition_groups(groups, "global")
    elif strategy == "matrix":
        sets = partition_groups(groups, "layer")
    else:
        sets = partition_groups(groups, _strategy_key(strategy))
    return partition_groups(groups, sets)  # the exactly-once check
