"""OLMP: layer-wise magnitude thresholds found by derivative-free search under a metric constraint.

Each threshold set ``s`` (a layer, a layer type, all layers, or any custom grouping) prunes the
units whose magnitude is below ``t_s = max(mu_s + c_s * sigma_s, 0)``, where ``mu_s``/``sigma_s``
are the mean/std of the set's magnitudes, measured once when the engine first sees the model. The
vector ``c`` is searched with nevergrad to minimise the fraction of units kept, subject to
``metric(model) >= reference - max_drop`` (infeasible candidates score 1.1, as in the paper).

Masks use Dynamic Network Surgery's rules, as OLMP's reference code does: a straight-through
backward (pruned weights keep learning) and hysteresis when masks are recomputed (a kept unit is
pruned at ``|w| <= 0.9 t``, a pruned one restored at ``|w| > 1.1 t``), so pruning interleaved with
retraining can undo mistakes. In a training loop, :meth:`OLMPPruner.step` searches every
``search_every`` steps and re-applies the masks in between, until ``prune_until``.

Why nevergrad: OLMP's optimiser (negatively correlated search) is a set of parallel (1+1)
evolution strategies with the 1/5th success rule; nevergrad's ``OnePlusOne`` is that strategy,
maintained and tested, installs beside torch 2.13 without pulling anything heavy, and lets the
optimiser be swapped by name (``CMA``, ``NGOpt``, ``DiscreteOnePlusOne``...) for comparison.
cma only offers CMA-ES; zoopt's SRACOS is further from NCS.

References:
    G. Li, C. Qian, C. Jiang, X. Lu, K. Tang, "Optimization based Layer-wise Magnitude-based
    Pruning for DNN Compression", IJCAI 2018.
    Y. Guo, A. Yao, Y. Chen, "Dynamic Network Surgery for Efficient DNNs", NeurIPS 2016.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from chemprune.engines.prune.base import Pruner, Schedule, register_pruner
from chemprune.engines.prune.groups import PruningGroup
from chemprune.engines.prune.magnitude import magnitude_scores
from chemprune.engines.prune.masks import alive_units, apply_masks, get_masks, group_masks
from chemprune.engines.prune.partition import partition_groups

__all__ = ["OLMPPruner", "SearchResult"]

INFEASIBLE = 1.1


@dataclass
class SearchResult:
    c: dict[str, float]
    kept: float
    metric: float | None
    reference: float | None
    evaluations: int
    feasible_evaluations: int
    history: list[tuple[float, float | None]] = field(default_factory=list)


def _original_magnitudes(model: nn.Module, groups: Sequence[PruningGroup]) -> dict[str, Tensor]:
    """Mean |w| per unit of the unmasked weights (pruned weights keep their values under DNS)."""
    return magnitude_scores(model, groups, 1.0, original=True)


@register_pruner("olmp")
class OLMPPruner(Pruner):
    """Optimization-based layer-wise magnitude pruning (see the module docstring).

    Args:
        groups: units to prune (any kind); thresholds act on their magnitudes.
        sparsity: the compression goal: the search is not rewarded for pruning beyond it (use
            e.g. 0.999 for "as far as the constraint allows").
        partition: how groups share thresholds: ``layer``, ``type``, ``global``, a callable or a
            mapping (see :func:`~chemprune.engines.prune.partition.partition_groups`).
        metric: ``metric(model) -> float``, higher is better (accuracy, -loss); ``None`` means
            no constraint (the goal sparsity is then reached directly).
        max_drop: allowed metric loss with respect to ``reference``.
        reference: ``"current"`` (the metric of the model before each search, as in OLMP's
            code) or ``"initial"`` (the metric before the first search: a bound on total loss).
        optimizer: a nevergrad optimizer name.
        budget: candidate evaluations per search.
        bounds: range of each ``c``.
        step_size: initial mutation scale of ``c``.
        hysteresis: ``(prune below, restore above)`` factors of the threshold.
        search_every, prune_until: the schedule inside a training loop (steps).
        straight_through: DNS backward (pruned weights keep learning).
        seed: seed of the optimizer.
        warm_start: evaluations of a bisection before each search (0: none, OLMP as
            published): one offset added to every set's ``c``, the largest that keeps the
            constraint, i.e. the same relative cut in every set; the evolution strategy starts
            from there. A search of a few dozen evaluations otherwise moves ``c`` only a few
            ``step_size`` from where it starts, which is what OLMP's many searches interleaved
            with training rely on; the warm start lets a few searches go as far.
    """

    needs_metric = True

    def __init__(
        self,
        *,
        groups: Sequence[PruningGroup],
        sparsity: float,
        scope: str = "layer",
        schedule: Schedule | None = None,
        partition: str | Callable[[PruningGroup], str] | Mapping[str, Sequence[str]] = "layer",
        metric: Callable[[nn.Module], float] | None = None,
        max_drop: float = 0.0,
        reference: str = "current",
        optimizer: str = "OnePlusOne",
        budget: int = 200,
        bounds: tuple[float, float] = (-3.0, 10.0),
        step_size: float = 1.0,
        hysteresis: tuple[float, float] = (0.9, 1.1),
        search_every: int = 1000,
        prune_until: int | None = None,
        straight_through: bool = True,
        seed: int = 0,
        warm_start: int = 0,
    ) -> None:
        super().__init__(groups=groups, sparsity=sparsity, scope=scope, schedule=schedule)
        import nevergrad as ng

        if optimizer not in ng.optimizers.registry:
            raise ValueError(f"unknown nevergrad optimizer {optimizer!r}")
        if reference not in ("current", "initial"):
            raise ValueError(f"reference must be 'current' or 'initial', got {reference!r}")
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        if not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds}")
        if max_drop < 0:
            raise ValueError(f"max_drop must be >= 0, got {max_drop}")
        if warm_start < 0:
            raise ValueError(f"warm_start must be >= 0 evaluations, got {warm_start}")
        self.sets = partition_groups(self.groups, partition)
        self.metric = metric
        self.max_drop = float(max_drop)
        self.reference = reference
        self.optimizer = optimizer
        self.budget = int(budget)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.step_size = float(step_size)
        self.hysteresis = hysteresis
        self.search_every = int(search_every)
        self.prune_until = prune_until
        self.straight_through = straight_through
        self.seed = seed
        self.warm_start = int(warm_start)
        self.c = dict.fromkeys(self.sets, self.bounds[0])
        self.stats: dict[str, tuple[float, float]] | None = None
        self.initial_metric: float | None = None
        self.results: list[SearchResult] = []
        self._by_name = {g.name: g for g in self.groups}
        self._total_units = sum(g.size for g in self.groups)

    # ------------------------------------------------------------------ thresholds and masks
    def calibrate(self, model: nn.Module) -> None:
        """Measure ``mu``/``sigma`` of each set's magnitudes (once; call again to re-measure)."""
        mags = _original_magnitudes(model, self.groups)
        self.stats = {}
        for name, members in self.sets.items():
            v = torch.cat([mags[m].flatten() for m in members]).double()
            self.stats[name] = (float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0)

    def thresholds(self, c: Mapping[str, float] | None = None) -> dict[str, float]:
        if self.stats is None:
            raise RuntimeError("call calibrate(model) first")
        c = self.c if c is None else c
        return {s: max(mu + c[s] * sd, 0.0) for s, (mu, sd) in self.stats.items()}

    def _keep(
        self,
        model: nn.Module,
        c: Mapping[str, float],
        current: dict[str, Tensor] | None,
        mags: dict[str, Tensor] | None = None,
    ):
        if mags is None:
            mags = _original_magnitudes(model, self.groups)
        t = self.thresholds(c)
        lo, hi = self.hysteresis
        keep: dict[PruningGroup, Tensor] = {}
        for s, members in self.sets.items():
            for name in members:
                m = mags[name]
                if current is None:
                    k = m > t[s]
                else:
                    alive = current[name]
                    k = torch.where(alive, m > lo * t[s], m > hi * t[s])
                g = self._by_name[name]
                if g.structured and not bool(k.any()):
                    k.view(-1)[torch.argmax(m.flatten())] = True
                keep[g] = k
        return keep

    def _current(self, model: nn.Module) -> dict[str, Tensor]:
        masks = get_masks(model)
        return {g.name: alive_units(model, g, masks) for g in self.groups}

    def _set(self, model: nn.Module, keep: dict[PruningGroup, Tensor]) -> float:
        apply_masks(model, group_masks(model, keep), straight_through=self.straight_through)
        return sum(int(k.sum()) for k in keep.values()) / self._total_units

    def update_masks(self, model: nn.Module) -> float:
        """Recompute the masks with the current thresholds (hysteresis); returns the kept fraction."""
        if self.stats is None:
            self.calibrate(model)
        return self._set(model, self._keep(model, self.c, self._current(model)))

    # ------------------------------------------------------------------ the search
    def search(self, model: nn.Module, goal: float | None = None) -> SearchResult:
        """Find ``c`` (one per threshold set) minimising the kept fraction under the constraint."""
        import nevergrad as ng

        if self.stats is None:
            self.calibrate(model)
        goal_kept = 1.0 - (self.sparsity if goal is None else goal)
        current = self._current(model)
        mags = _original_magnitudes(model, self.groups)  # the weights do not move during a search
        ref = None
        if self.metric is not None:
            now = float(self.metric(model))
            if self.initial_metric is None:
                self.initial_metric = now
            ref = now if self.reference == "current" else self.initial_metric
        names = list(self.sets)
        best: tuple[float, dict[str, float], float, float | None] | None = None
        history: list[tuple[float, float | None]] = []
        feasible_n = 0
        # the metric of a candidate already measured in this search (the evolution strategy
        # starts by proposing where the warm start ended): the masks are the same, so is it
        measured: dict[tuple[float, ...], float] = {}

        def evaluate(c: dict[str, float]) -> float:
            nonlocal best, feasible_n
            kept = self._set(model, self._keep(model, c, current, mags))
            value = None
            ok = True
            if self.metric is not None:
                key = tuple(c[n] for n in names)
                if key not in measured:
                    measured[key] = float(self.metric(model))
                value = measured[key]
                ok = value >= ref - self.max_drop
            history.append((kept, value))
            fitness = max(kept, goal_kept) + 1e-3 * abs(kept - goal_kept) if ok else INFEASIBLE
            if ok:
                feasible_n += 1
                if best is None or fitness < best[0]:
                    best = (fitness, c, kept, value)
            return fitness

        start = np.array([self.c[n] for n in names], dtype=float)
        if self.warm_start:
            start = self._bisect_offset(start, names, evaluate)
        param = ng.p.Array(init=start)
        param.set_bounds(*self.bounds).set_mutation(sigma=self.step_size)
        param.random_state = np.random.RandomState(self.seed + len(self.results))
        opt = ng.optimizers.registry[self.optimizer](parametrization=param, budget=self.budget)
        for _ in range(self.budget):
            cand = opt.ask()
            c = dict(zip(names, (float(x) for x in cand.value), strict=True))
            opt.tell(cand, evaluate(c))
        if best is None:  # nothing feasible: keep the masks as they were
            self._set(model, {self._by_name[n]: k for n, k in current.items()})
            result = SearchResult(
                dict(self.c),
                sum(int(k.sum()) for k in current.values()) / self._total_units,
                ref,
                ref,
                len(history),
                0,
                history,
            )
        else:
            _, c, kept, value = best
            self.c = c
            self._set(model, self._keep(model, c, current, mags))
            result = SearchResult(dict(c), kept, value, ref, len(history), feasible_n, history)
        self.results.append(result)
        return result

    def _bisect_offset(
        self, start: np.ndarray, names: list[str], evaluate: Callable[[dict[str, float]], float]
    ) -> np.ndarray:
        """``start + d`` for the largest offset ``d`` (in ``warm_start`` bisection steps) whose
        masks meet the constraint; ``start`` itself when none does.

        From the second search on, the weights may have moved since the last one (retraining),
        and the last thresholds may no longer meet the constraint (kept weights that shrank fall
        under the hysteresis bound and are pruned). The first evaluation then checks offset 0;
        when it fails, the bisection looks below it, down to the lower bound, so the search
        starts from feasible masks instead of spending its budget on infeasible ones."""

        def ok(d: float) -> bool:
            c = np.clip(start + d, *self.bounds)
            return evaluate(dict(zip(names, (float(x) for x in c), strict=True))) < INFEASIBLE

        lo, hi, steps = 0.0, float(self.bounds[1] - start.min()), self.warm_start
        if self.results:
            steps -= 1
            if not ok(0.0):
                lo, hi = float(self.bounds[0] - start.max()), 0.0
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return np.clip(start + lo, *self.bounds)

    # ------------------------------------------------------------------ Pruner interface
    def score(self, model: nn.Module) -> dict[str, Tensor]:
        return _original_magnitudes(model, self.groups)

    def apply(self, model: nn.Module, sparsity: float | None = None) -> dict[str, Tensor]:
        """Search thresholds for the goal ``sparsity`` (under the constraint) and mask."""
        self.search(model, self.sparsity if sparsity is None else sparsity)
        return get_masks(model)

    def step(self, model: nn.Module, step: int) -> bool:
        if self.prune_until is not None and step >= self.prune_until:
            return False
        if step % self.search_every == 0:
            self.search(model)
            return True
        self.update_masks(model)
        return False

    def __repr__(self) -> str:
        return (
            f"OLMPPruner(sets={len(self.sets)}, groups={len(self.groups)}, goal={self.sparsity}, "
            f"max_drop={self.max_drop}, optimizer={self.optimizer!r}, budget={self.budget})"
        )
