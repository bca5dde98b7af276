"""The recipe of one architecture search (:class:`SearchSettings`): what
:func:`~chemprune.pipeline.search_schnet.search_schnet` searches over, for how long and how,
checked in one place. ``chemprune search`` builds one from its options (with the job around it,
:mod:`chemprune.pipeline.search_job`); ``benchmarks/qm9_darts.py`` builds the same for its rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chemprune.molecules.schnet.nas import DEFAULT_CANDIDATES

__all__ = ["SearchSettings", "WARMUP_SHARE"]

#: the share of ``steps`` that trains the weights only when ``warmup_steps`` is not given
WARMUP_SHARE = 0.3


def _plain(field: str) -> str:
    return field


@dataclass(frozen=True)
class SearchSettings:
    """The recipe of one search. See :func:`~chemprune.pipeline.search_schnet.search_schnet`
    for what each field does; :meth:`check` refuses combinations that cannot run, naming the
    field (``ValueError``).

    ``steps`` and/or ``minutes`` is the budget (at least one; ``darts_minus`` needs steps);
    ``warmup_steps`` (weights only, before the architecture learns) defaults to
    :data:`WARMUP_SHARE` of ``steps`` (0 with ``minutes`` alone; :attr:`warmup`).
    ``target_macs`` (a fraction of the teacher's MACs in (0, 1]) turns on the cost penalty
    weighted by ``cost_weight``; ``filter_grid`` (knots, 0: exact) searches on tabulated filters.
    """

    engine: str = "darts_minus"
    order: int = 1
    distill: str = "features"
    candidates: tuple[str, ...] = tuple(DEFAULT_CANDIDATES)
    target_macs: float | None = None
    cost_weight: float = 1.0
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 5e-4
    arch_lr: float = 3e-3
    seed: int = 0
    warmup_steps: int | None = None
    filter_grid: int = 0

    @property
    def warmup(self) -> int:
        """``warmup_steps``, or its default: :data:`WARMUP_SHARE` of ``steps`` (0 without)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(WARMUP_SHARE * self.steps) if self.steps else 0

    def check(self, name: Callable[[str], str] = _plain) -> SearchSettings:
        """Raise ``ValueError`` on a combination that cannot run; returns ``self``.

        ``name`` says how a message calls a field (the command line passes its option names:
        ``steps`` -> ``--steps``)."""
        from chemprune.engines.nas import NAS_ENGINES
        from chemprune.molecules.schnet.distill import DISTILL_MODES
        from chemprune.molecules.schnet.nas import parse_candidate

        if self.steps is None and self.minutes is None:
            raise ValueError(f"give {name('steps')} or {name('minutes')} (the search's budget)")
        if self.engine == "darts_minus" and self.steps is None:
            raise ValueError(
                f"{name('engine')} darts_minus decays its auxiliary skip over {name('steps')}: "
                "give them"
            )
        if self.steps is not None and self.warmup >= self.steps:
            raise ValueError(
                f"{name('warmup_steps')} {self.warmup} leaves none of the {self.steps} "
                f"{name('steps')} to search"
            )
        NAS_ENGINES.get(self.engine)  # (an unknown name raises, listing the known ones)
        if self.order not in (1, 2):
            raise ValueError(f"{name('order')} must be 1 or 2, got {self.order}")
        if self.distill not in DISTILL_MODES:
            raise ValueError(
                f"{name('distill')} must be one of {DISTILL_MODES}, got {self.distill!r}"
            )
        for spec in self.candidates:
            parse_candidate(spec, 1)  # (an unknown operation raises, naming it)
        if len(self.candidates) < 2:
            raise ValueError(
                f"{name('candidates')} needs at least two operations, got {list(self.candidates)}"
            )
        if self.target_macs is not None and not 0 < self.target_macs <= 1:
            raise ValueError(
                f"{name('target_macs')} is a fraction of the teacher's MACs in (0, 1], got "
                f"{self.target_macs}"
            )
        for field, low, value in (
            ("steps", 1, self.steps), ("batch_size", 1, self.batch_size),
            ("warmup_steps", 0, self.warmup_steps), ("filter_grid", 0, self.filter_grid),
        ):  # fmt: skip
            if value is not None and value < low:
                raise ValueError(f"{name(field)} must be >= {low}, got {value}")
        if self.filter_grid == 1:
            raise ValueError(f"{name('filter_grid')} is 0 (exact) or a knot count >= 2, got 1")
        for field, value in (
            ("minutes", self.minutes), ("lr", self.lr), ("arch_lr", self.arch_lr)
        ):  # fmt: skip
            if value is not None and not value > 0:
                raise ValueError(f"{name(field)} must be > 0, got {value}")
        if not self.cost_weight >= 0:
            raise ValueError(f"{name('cost_weight')} must be >= 0, got {self.cost_weight}")
        return self

    def replace(self, **changes: Any) -> SearchSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "candidates": list(self.candidates)}
