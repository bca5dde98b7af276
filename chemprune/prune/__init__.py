"""Pruning engines acting on any ``torch.nn.Module``.

Groups (:mod:`.groups`, :mod:`.dependency`) say what is pruned together; masks (:mod:`.masks`)
switch units off through ``torch.nn.utils.parametrize``; :func:`shrink` removes them for real;
engines subclass :class:`Pruner` (score / apply / schedule) and live in :data:`PRUNERS`.
"""

from chemprune.prune.accounting import count_parameters, layer_stats, summarize
from chemprune.prune.attention import AttentionPruner
from chemprune.prune.autoprune import AutoPrunePruner
from chemprune.prune.base import PRUNERS, Pruner, Schedule, register_pruner, select_units
from chemprune.prune.dependency import channel_groups, input_groups
from chemprune.prune.discriminant import CDCPruner
from chemprune.prune.force import ForcePruner
from chemprune.prune.groups import PruningGroup, Slot, weight_groups
from chemprune.prune.lowrank import LowRankLinear, decompose, low_rank_manifest
from chemprune.prune.magnitude import MagnitudePruner, RandomPruner
from chemprune.prune.masks import apply_masks, get_masks, load_masked_state_dict, remove_masks
from chemprune.prune.olmp import OLMPPruner
from chemprune.prune.shrink import resize_to, shape_manifest, shrink
from chemprune.prune.ssl import SSLPruner

__all__ = [
    "PRUNERS", "Pruner", "Schedule", "register_pruner", "select_units",
    "PruningGroup", "Slot", "weight_groups", "channel_groups", "input_groups",
    "apply_masks", "get_masks", "remove_masks", "load_masked_state_dict",
    "shrink", "shape_manifest", "resize_to",
    "count_parameters", "layer_stats", "summarize",
    "MagnitudePruner", "RandomPruner", "OLMPPruner", "AutoPrunePruner", "AttentionPruner", "SSLPruner",
    "ForcePruner", "CDCPruner", "LowRankLinear", "decompose", "low_rank_manifest",
]  # fmt: skip
