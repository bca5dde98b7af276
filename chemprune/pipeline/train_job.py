"""A training process: the job around a :class:`~chemprune.pipeline.train_state.TrainSettings`
(:class:`TrainJob`: the data and split, the run folder, a checkpoint to start from or an
architecture file, resume, time budget, device), run by :func:`run_train_job`: alone, or as one
rank of a torchrun job (the distributed context is made from torchrun's environment).
``chemprune train`` builds both from its options and either relaunches itself under torchrun
(process management stays with the command line) or calls :func:`run_train_job` once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chemprune.pipeline.train_state import TrainSettings

__all__ = ["TrainJob", "TrainJobError", "run_train_job"]

# the widths an architecture file (or --init's checkpoint) sets in place of the settings' own
_WIDTHS = ("hidden_channels", "filter_channels", "num_interactions", "num_gaussians", "cutoff")


class TrainJobError(ValueError):
    """A job that cannot run as given: its architecture file, its checkpoint to start from, or
    the two together (the message names the fields as the caller says them)."""


@dataclass(frozen=True)
class TrainJob:
    """One training process around a :class:`TrainSettings`.

    Args:
        out: the run folder (``last.pt``, ``best.pt``, ``history.jsonl``).
        data_dir: the qm9-format CSVs to train on (default: qm9pack).
        subset: train on this many random molecules split 80/10/10 (default: the standard
            split of full QM9, all of a small data set).
        init: start from this trained checkpoint: its architecture, weights, normalization and
            split (:func:`~chemprune.pipeline.train.init_run`); ``settings.init`` becomes its
            resolved path.
        arch: an architecture JSON written by ``chemprune search``
            (:func:`~chemprune.pipeline.search_schnet.read_arch`) in place of the settings'
            widths; with a teacher, its kept blocks are the teacher blocks distilled from.
        resume: continue the run in ``out``.
        max_minutes: training-time budget of this call (the run stays resumable).
        checkpoint_every: also save ``last.pt`` every N optimizer steps (0: epoch ends only).
        device: where to train (``cpu``, ``cuda``, ...).
        progress: show a progress bar when stderr is a terminal.
        world_size: under torchrun, the number of processes this job expects (``None``:
            whatever torchrun says); a different one is a
            :class:`~chemprune.engines.distributed.context.WorldSizeError`.
    """

    out: Path
    data_dir: Path | None = None
    subset: int | None = None
    init: Path | None = None
    arch: Path | None = None
    resume: bool = False
    max_minutes: float | None = None
    checkpoint_every: int = 0
    device: str = "cpu"
    progress: bool = True
    world_size: int | None = None


def _say(message: str) -> None:
    print(message, flush=True)


def run_train_job(
    job: TrainJob,
    settings: TrainSettings,
    *,
    log: Callable[[str], None] | None = None,
    name: Callable[[str], str] = str,
) -> dict[str, Any] | None:
    """Train (or resume) ``job`` with ``settings`` in this process: alone, or as one rank of a
    torchrun job (after a restart by torchrun it resumes from ``last.pt``).

    Loads the data and split, reads ``job.arch`` or ``job.init`` (whose split is then the
    run's), says what it trains on, and runs :func:`~chemprune.pipeline.train.train`. Returns
    its summary, in the main process; ``None`` in the others of a torchrun job.

    Args:
        log: where one-line messages go (default: printed, the first one flushed).
        name: how the caller says a field of :class:`TrainJob` or :class:`TrainSettings` in a
            message (``chemprune train``: its option).

    Raises:
        TrainJobError: ``job.arch`` unreadable, for another target, or given with widths in
            ``settings`` or with ``job.init``; ``job.init`` given with ``job.subset``, or
            refused by :func:`~chemprune.pipeline.train.init_run`.
        chemprune.engines.distributed.context.WorldSizeError: torchrun started a number of
            processes other than ``job.world_size``.
        chemprune.pipeline.train.TrainingDiverged, TrainingInterrupted: as
            :func:`~chemprune.pipeline.train.train` (the state is in ``last.pt``).
    """
    from chemprune.engines.distributed.context import DistContext
    from chemprune.engines.distributed.launch import in_torchrun, restart_count

    context = None
    resume = job.resume
    if in_torchrun():
        context = DistContext.from_env(expected_world_size=job.world_size)
        # after a failure torchrun restarts every process: continue from last.pt
        resume = resume or (restart_count() > 0 and (Path(job.out) / "last.pt").exists())
    try:
        return _run(job, settings, context=context, resume=resume, log=log, name=name)
    finally:
        if context is not None:
            context.close()


def _run(
    job: TrainJob,
    settings: TrainSettings,
    *,
    context,
    resume: bool,
    log: Callable[[str], None] | None,
    name: Callable[[str], str],
) -> dict[str, Any] | None:
    from chemprune.molecules.data.splits import load_dataset_and_split
    from chemprune.pipeline.train import init_run, train

    main = context is None or context.is_main
    data, split, source = load_dataset_and_split(job.data_dir, job.subset, settings.seed)
    arch, blocks = _architecture(job, settings, name)
    if job.init is not None:
        if arch is not None:
            raise TrainJobError(
                f"{name('init')} and {name('arch')} both give the architecture: pass one"
            )
        if job.subset is not None:
            raise TrainJobError(
                f"{name('init')} trains on its checkpoint's split: drop {name('subset')}"
            )
        try:
            arch, split = init_run(job.init, settings.target, len(data))
        except ValueError as err:
            raise TrainJobError(str(err)) from None
    if arch is not None:
        settings = dataclasses.replace(settings, architecture=arch, teacher_blocks=blocks)
    if job.init is not None:
        settings = dataclasses.replace(settings, init=str(Path(job.init).resolve()))
    if main:
        (log or _say)(
            f"chemprune train: {settings.target}, {split.sizes[0]}/{split.sizes[1]}/"
            f"{split.sizes[2]} train/val/test molecules from {source}, run folder {job.out}"
            + (f", {context.world_size} processes" if context and context.distributed else "")
        )
    summary = train(
        data,
        split,
        job.out,
        settings=settings,
        resume=resume,
        max_minutes=job.max_minutes,
        checkpoint_every=job.checkpoint_every,
        data_source=source,
        progress=job.progress,
        device=job.device,
        context=context,
        **({} if log is None else {"log": log}),
    )
    return summary if main else None


def _architecture(
    job: TrainJob, settings: TrainSettings, name: Callable[[str], str]
) -> tuple[dict | None, tuple[int, ...] | None]:
    """The SchNet config of ``job.arch`` (checked) and, with a teacher, the teacher blocks its
    blocks replace (for block-wise distillation)."""
    from chemprune.pipeline.search_schnet import read_arch

    if job.arch is None:
        return None, None
    defaults = TrainSettings()
    given = [name(w) for w in _WIDTHS if getattr(settings, w) != getattr(defaults, w)]
    if given:
        raise TrainJobError(f"{name('arch')} sets the architecture: drop {', '.join(given)}")
    try:
        rec = read_arch(job.arch)
    except ValueError as err:
        raise TrainJobError(f"{name('arch')} {err}") from None
    if rec.target is not None and rec.target != settings.target:
        raise TrainJobError(
            f"{name('arch')} {job.arch} was searched for {rec.target!r}, not "
            f"{name('target')} {settings.target}"
        )
    if not settings.teacher:
        return rec.config, None
    return rec.config, rec.kept_blocks
