"""The recipe of one pruning (:class:`PruneSettings`): what
:func:`~chemprune.pipeline.compress_schnet.prune_schnet` removes and how it fine-tunes, checked in
one place. ``chemprune prune`` builds one from its options (with the job around it,
:mod:`chemprune.pipeline.prune_job`); benchmarks build the same for their rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from chemprune.molecules.schnet.refit import LAYERS as REFIT_LAYERS

__all__ = ["PruneSettings", "LR_SCHEDULES"]

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class PruneSettings:
    """The recipe of one pruning: the engine and what it removes, the fine-tuning budget and
    schedule, the teacher's terms. See :func:`~chemprune.pipeline.compress_schnet.prune_schnet`
    for what each field does; :meth:`check` refuses combinations that cannot run, naming the
    field (``ValueError``)."""

    method: str
    sparsity: float = 0.0
    kind: str = "weight"
    blocks: tuple[int, ...] | None = None
    finetune_minutes: float = 0.0
    finetune_steps: int | None = None
    lr: float = 2e-4
    batch_size: int = 32
    lr_schedule: str = "constant"
    min_lr: float = 1e-6
    distill: str = "none"
    distill_output_weight: float = 1.0
    distill_feature_weight: float = 1.0
    gradual: bool = False
    rank_energy: float | None = None
    threshold: float | None = None
    filter_grid: int = 0
    ema: float = 0.0
    refit: tuple[str, ...] = ()
    refit_molecules: int = 1024
    engine_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def check(self) -> PruneSettings:
        """Raise ``ValueError`` on a combination that cannot run; returns ``self``."""
        from chemprune.engines.prune import PRUNERS, AutoPrunePruner
        from chemprune.molecules.schnet.distill import DISTILL_MODES

        engine = PRUNERS.get(self.method)  # (an unknown name raises, listing the known ones)
        by_rank = engine.unit == "rank"
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES}, got {self.distill!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr} > {self.lr}")
        if self.gradual and (issubclass(engine, AutoPrunePruner) or engine.needs_metric):
            raise ValueError(
                f"gradual removal is for engines without gates or search, not {self.method}"
            )
        if self.gradual and not self.finetune_steps:
            raise ValueError("gradual removal needs a step budget (finetune_steps)")
        if self.rank_energy is not None and not by_rank:
            raise ValueError(
                f"rank_energy is for engines that remove rank (force), not {self.method}"
            )
        if self.threshold is not None and not engine.supports_threshold:
            raise ValueError(
                f"a norm threshold is for structured sparsity learning, not {self.method}"
            )
        if self.refit:
            if by_rank or "atom_basis" in self.kind.split("+"):
                raise ValueError(
                    "the refit keeps every layer's outputs: not with rank or atom_basis"
                )
            if any(name not in REFIT_LAYERS for name in self.refit) or self.refit_molecules < 1:
                raise ValueError(
                    f"refit layers must be among {REFIT_LAYERS} with refit_molecules >= 1, got "
                    f"{list(self.refit)} and {self.refit_molecules}"
                )
        return self

    def replace(self, **changes: Any) -> PruneSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["engine_options"] = {k: str(v) for k, v in self.engine_options.items()}
        return out
