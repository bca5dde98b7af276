"""Pruning engines acting on any ``torch.nn.Module``.

Groups (:mod:`.groups`, :mod:`.dependency`) say what is pruned together; masks (:mod:`.masks`)
switch units off through ``torch.nn.utils.parametrize``; :func:`shrink` removes them for real;
engines subclass :class:`Pruner` (score / apply / schedule) and live in :data:`PRUNERS`;
:mod:`.lowrank` factorizes layers into the two-layer modules of :mod:`.lowrank_layers`. SchNet's
groups, statistics and refit are in :mod:`chemprune.molecules.schnet`.
"""

from chemprune.engines.prune.accounting import count_parameters, layer_stats, summarize
from chemprune.engines.prune.attention import AttentionPruner
from chemprune.engines.prune.autoprune import AutoPrunePruner
from chemprune.engines.prune.base import PRUNERS, Pruner, Schedule, register_pruner, select_units
from chemprune.engines.prune.dependency import channel_groups, input_groups
from chemprune.engines.prune.discriminant import CDCPruner
from chemprune.engines.prune.force import ForcePruner
from chemprune.engines.prune.groups import PruningGroup, Slot, weight_groups
from chemprune.engines.prune.lowrank import LowRankLinear, decompose, low_rank_manifest
from chemprune.engines.prune.magnitude import MagnitudePruner, RandomPruner
from chemprune.engines.prune.masks import (
    apply_masks,
    get_masks,
    load_masked_state_dict,
    remove_masks,
)
from chemprune.engines.prune.olmp import OLMPPruner
from chemprune.engines.prune.shrink import resize_to, shape_manifest, shrink
from chemprune.engines.prune.ssl import SSLPruner

__all__ = [
    "PRUNERS", "Pruner", "Schedule", "register_pruner", "select_units",
    "PruningGroup", "Slot", "weight_groups", "channel_groups", "input_groups",
    "apply_masks", "get_masks", "remove_masks", "load_masked_state_dict",
    "shrink", "shape_manifest", "resize_to",
    "count_parameters", "layer_stats", "summarize",
    "MagnitudePruner", "RandomPruner", "OLMPPruner", "AutoPrunePruner", "AttentionPruner", "SSLPruner",
    "ForcePruner", "CDCPruner", "LowRankLinear", "decompose", "low_rank_manifest",
]  # fmt: skip
