"""A pruning run as settings objects: what to remove and how to fine-tune (:class:`PruneSettings`,
the recipe :func:`~chemprune.pipeline.compress_schnet.prune_schnet` follows) and the job around
it (:class:`PruneJob`: which checkpoint, how much, tabulated or not, where to write), run by
:func:`run_prune_job`. ``chemprune prune`` builds both from its options and calls
:func:`run_prune_job` once; benchmarks build the same :class:`PruneSettings` for their rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chemprune.prune.schnet_refit import LAYERS as REFIT_LAYERS

__all__ = ["PruneSettings", "PruneJob", "PruneOutcome", "run_prune_job"]

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
        from chemprune.distill.schnet import DISTILL_MODES
        from chemprune.prune import PRUNERS, AutoPrunePruner

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


@dataclass(frozen=True)
class PruneJob:
    """One ``chemprune prune`` run around a :class:`PruneSettings`.

    Args:
        model: the checkpoint to prune (trained by chemprune or imported; its split is used).
        out: where the pruned checkpoint is written (atomically).
        target_macs: instead of ``settings.sparsity``, keep at most this fraction of the
            multiply-accumulates (structured kinds only; counted tabulated with ``tabulate``).
        tabulate: save the pruned model tabulated (checked against the exact one first);
            ``knots`` fixes the table size (default: the smallest passing count).
        data_dir: the qm9-format CSVs the model was trained on (default: qm9pack).
        device: where the fine-tuning runs.
    """

    model: Path
    out: Path
    target_macs: float | None = None
    tabulate: bool = False
    knots: int | None = None
    data_dir: Path | None = None
    device: str = "cpu"

    def check(self, settings: PruneSettings) -> None:
        if self.target_macs is not None and settings.kind == "weight":
            raise ValueError(
                "target_macs needs a structured kind (unstructured zeros save no MACs)"
            )
        if self.target_macs is not None and "depth" in settings.kind.split("+"):
            raise ValueError("target_macs cannot count blocks: give a sparsity with depth")
        if self.knots is not None and not self.tabulate:
            raise ValueError("knots is for a tabulated result")


@dataclass
class PruneOutcome:
    """What :func:`run_prune_job` did: the report of the pruning (widths, MACs, MAE before and
    after, tabulation), the sparsity used, notes for the user, and why the model was written
    exact when the tabulation failed (``None`` otherwise)."""

    report: dict[str, Any]
    sparsity: float
    notes: list[str]
    untabulated: str | None = None


def run_prune_job(
    job: PruneJob,
    settings: PruneSettings,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PruneOutcome:
    """Load ``job.model`` with its split and data, prune it by ``settings`` (the sparsity from
    ``job.target_macs`` when given), optionally tabulate, and write ``job.out``."""
    from chemprune.checkpoint import atomic_save, checkpoint_split, load_model, model_checkpoint
    from chemprune.data.batching import MoleculeSet
    from chemprune.data.qm9 import load_dataset
    from chemprune.pipeline.compress_schnet import (
        model_stats,
        prune_schnet,
        sparsity_for_macs,
        split_from_checkpoint,
    )

    settings.check()
    job.check(settings)
    model, ckpt = load_model(job.model)
    checkpoint_split(ckpt, job.model)  # a malformed split, before the data set is read
    data, source, _ = load_dataset(job.data_dir)
    checkpoint_split(ckpt, job.model, len(data), source)
    split = split_from_checkpoint(ckpt, len(data))
    target = ckpt["target"]
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(target["name"]))
    notes: list[str] = []
    if job.target_macs is not None:
        sparsity = sparsity_for_macs(
            model, mset.collate(split.val[:64]), job.target_macs, kind=settings.kind,
            blocks=settings.blocks, tabulated=job.tabulate,
        )  # fmt: skip
        settings = settings.replace(sparsity=sparsity)
        counted = " (counted tabulated)" if job.tabulate else ""
        notes.append(
            f"target MACs {job.target_macs:g}{counted}: sparsity {sparsity:.4f} of {settings.kind}"
        )
    if job.tabulate and {"kernel", "filter_hidden"} & set(settings.kind.split("+")):
        notes.append(
            "once tabulated, filter-network hidden units cost nothing; the filter kind prunes "
            "only what the tabulated model still pays for"
        )
    for note in notes:
        log(f"note: {note}")
    model.to(job.device)
    report = prune_schnet(model, mset.to(job.device), split, settings, progress=progress, log=log)
    if job.target_macs is not None:
        report["target_macs"] = job.target_macs
    model.cpu()
    metrics = dict(ckpt.get("metrics", {}), val_mae=report["val_mae_after"])
    extra = {"pruning": {**report, "source_model": str(job.model)}}
    untabulated = None
    if job.tabulate:
        from chemprune.pipeline.tabulate import (
            TabulateSettings,
            TabulationFailed,
            tabulate_and_check,
        )

        try:
            tab, tab_report = tabulate_and_check(
                model, mset, split.val, TabulateSettings(knots=job.knots, time_molecules=0)
            )
        except TabulationFailed as err:
            untabulated = str(err)
        else:
            tab_report.pop("settings", None)
            report["tabulation"] = extra["tabulation"] = tab_report
            report["tabulated"] = model_stats(tab, mset, split.val)
            model = tab
    saved = model_checkpoint(
        model, target=target, data=ckpt.get("data"), metrics=metrics, extra=extra
    )
    atomic_save(saved, job.out)
    return PruneOutcome(report=report, sparsity=settings.sparsity, notes=notes,
                        untabulated=untabulated)  # fmt: skip
