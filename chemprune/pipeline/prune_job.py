"""A pruning run: the job around a :class:`~chemprune.pipeline.prune_settings.PruneSettings`
(:class:`PruneJob`: which checkpoint, how much, tabulated or not, where to write), run by
:func:`run_prune_job`. ``chemprune prune`` builds both from its options and calls
:func:`run_prune_job` once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chemprune.pipeline.compress_schnet import (
    model_stats,
    prune_schnet,
    sparsity_for_macs,
)
from chemprune.pipeline.prune_settings import PruneSettings

__all__ = ["PruneJob", "PruneOutcome", "run_prune_job"]


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
    from chemprune.common.atomic import atomic_save
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.pipeline.trained import load_trained

    settings.check()
    job.check(settings)
    trained = load_trained(job.model, job.data_dir)
    model, ckpt, target, mset, split = (
        trained.model, trained.ckpt, trained.target, trained.mset, trained.split
    )  # fmt: skip
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
        from chemprune.deploy.tabulate import (
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
