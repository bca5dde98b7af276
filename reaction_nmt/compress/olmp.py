"""OLMP on an OpenNMT-py model: one magnitude threshold per set of weight matrices, searched
under a validation-metric constraint, interleaved with masked retraining.

``search -> (retrain -> search) x rounds``: every search keeps ``metric >= initial - max_drop``
(OLMP's ``reference="initial"``: a bound on the total loss, not a per-round one), and the run
ends with a search, so the returned masks satisfy the constraint as measured. Retraining lets
the next search prune further; masks are only recomputed by searches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from torch import nn

from chemprune.engines.prune.masks import alive_units, get_masks
from chemprune.engines.prune.olmp import OLMPPruner
from reaction_nmt.compress.groups import group_aliases, partition, transformer_groups

__all__ = ["WARM_START", "OLMPReport", "olmp_compress", "set_sparsity"]

WARM_START = 8  # bisection evaluations before each search (chemprune's OLMPPruner: warm_start)


@dataclass
class OLMPReport:
    strategy: str
    sets: dict[str, dict]
    sparsity: float
    weights: int
    metric_before: float
    metric_after: float
    max_drop: float
    rounds: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def set_sparsity(model: nn.Module, pruner: OLMPPruner) -> dict[str, dict]:
    """Weights and sparsity of each threshold set (and its threshold)."""
    masks = get_masks(model)
    by_name = {g.name: g for g in pruner.groups}
    t = pruner.thresholds() if pruner.stats is not None else {}
    out = {}
    for s, members in pruner.sets.items():
        total = sum(by_name[m].size for m in members)
        alive = sum(int(alive_units(model, by_name[m], masks).sum()) for m in members)
        out[s] = {"weights": total, "sparsity": 1 - alive / total, "threshold": t.get(s)}
    return out


def olmp_compress(
    working: nn.Module,
    metric: Callable[[nn.Module], float],
    *,
    strategy: str | Mapping[str, Sequence[str]] = "type",
    max_drop: float = 1.0,
    goal: float = 0.99,
    budget: int = 40,
    warm_start: int = WARM_START,
    rounds: int = 0,
    retrain: Callable[[nn.Module], dict] | None = None,
    optimizer: str = "OnePlusOne",
    seed: int = 0,
    reference: float | None = None,
    log: Callable[[str], None] = print,
) -> tuple[OLMPPruner, OLMPReport]:
    """Mask ``working`` in place with OLMP thresholds (see the module docstring).

    Args:
        working: model to mask (from :func:`~reaction_nmt.compress.evaluate.working_copy`).
        metric: ``metric(model)``, higher is better (top-1 in points, or minus perplexity).
        strategy: grouping strategy name or custom spec (set -> glob patterns).
        max_drop: allowed loss of ``metric`` with respect to the unpruned model.
        goal: sparsity beyond which the search is not rewarded.
        budget: candidate evaluations per search.
        warm_start: bisection evaluations before each search (one offset for every set's
            threshold; see :class:`~chemprune.engines.prune.OLMPPruner`); 0: the search alone.
        rounds: retraining rounds (each followed by a search); needs ``retrain``.
        retrain: ``retrain(model)``, masked retraining in place.
        reference: the metric the drop is measured from (default: ``working``'s own), e.g.
            the model's before structured pruning.
    """
    start = time.perf_counter()
    groups = transformer_groups(working)
    sets = partition(groups, strategy, group_aliases(working))
    pruner = OLMPPruner(
        groups=groups, sparsity=goal, partition=sets, metric=metric, max_drop=max_drop,
        reference="initial", optimizer=optimizer, budget=budget, seed=seed,
        warm_start=warm_start,
    )  # fmt: skip
    if reference is not None:
        pruner.initial_metric = float(reference)
    name = strategy if isinstance(strategy, str) else "custom"
    history = []
    for r in range(rounds + 1):
        if r:
            if retrain is None:
                break
            info = retrain(working)
            value = metric(working)
            g = info.get("gradual")
            ramp = f", sparsity {g['sparsity_from']:.3f} -> {g['sparsity_to']:.3f}" if g else ""
            log(f"  retrained {info.get('steps')} steps{ramp}: metric {value:.2f}")
            history.append({"retrain": info, "metric_after_retrain": value})
        res = pruner.search(working)
        log(
            f"  search {r}: sparsity {1 - res.kept:.3f}, metric {res.metric:.2f} "
            f"(reference {res.reference:.2f}, {res.feasible_evaluations}/{res.evaluations} feasible)"
        )
        history.append(
            {"search": r, "sparsity": 1 - res.kept, "metric": res.metric,
             "feasible": res.feasible_evaluations, "evaluations": res.evaluations}
        )  # fmt: skip
    after = metric(working)
    total = sum(g.size for g in groups)
    report = OLMPReport(
        strategy=name,
        sets=set_sparsity(working, pruner),
        sparsity=1 - pruner.results[-1].kept,
        weights=total,
        metric_before=float(pruner.initial_metric),
        metric_after=after,
        max_drop=max_drop,
        rounds=history,
        seconds=time.perf_counter() - start,
    )
    return pruner, report
