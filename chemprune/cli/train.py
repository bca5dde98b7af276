"""``chemprune train``: train a SchNet on QM9 (or QM9-format CSV files)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from chemprune.common.options import (
    below_one,
    grid_knots,
    json_line,
    nonneg_float,
    nonneg_int,
    open_fraction,
    positive_float,
    positive_int,
    seed_int,
    threads_int,
)
from chemprune.molecules.data.splits import load_dataset_and_split

DESCRIPTION = """Train SchNet on one QM9 target. The run folder gets last.pt (resumable state,
saved atomically at every epoch end, every --checkpoint-every steps and on Ctrl-C/SIGTERM),
best.pt (lowest validation MAE; what predict/evaluate take) and history.jsonl.

Several processes (PyTorch DDP on gloo, started with torchrun): --nproc N on one machine; on
several machines the same command on each with --nnodes M --rdzv-endpoint HOST:PORT (a free port
on one of them) and a shared run folder. --batch-size is then the global batch, split between
the processes; rank 0 writes the files and the log."""

_PARSER: argparse.ArgumentParser | None = None


def add_parser(sub: argparse._SubParsersAction) -> None:
    from chemprune.pipeline.optim import LR_SCHEDULES, OPTIMIZERS

    p = sub.add_parser("train", help="train a SchNet on QM9", description=DESCRIPTION)
    p.add_argument(
        "--target", default="gap", help="QM9 target (gap, homo, lumo, U0, U0_atom, mu, alpha, ...)"
    )
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this trained checkpoint: its architecture, weights, normalization and "
        "split (a pruned model fine-tuned for longer, with --teacher its parent; an imported "
        "model trained on); --target must be its target",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    data = p.add_argument_group("data")
    data.add_argument(
        "--subset",
        type=positive_int,
        default=None,
        help="use N random molecules split 80/10/10 (default: standard 110k/10k/rest)",
    )
    data.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with qm9pack-format CSV files (default: the qm9pack package)",
    )
    data.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of the split, the initialisation and the batch order",
    )
    model = p.add_argument_group("model")
    model.add_argument("--hidden", type=positive_int, default=128, help="atom-basis width")
    model.add_argument(
        "--filters", type=positive_int, default=128, help="filter channels per block"
    )
    model.add_argument("--interactions", type=positive_int, default=6)
    model.add_argument("--gaussians", type=positive_int, default=50)
    model.add_argument("--cutoff", type=positive_float, default=5.0, help="Angstrom")
    model.add_argument(
        "--arch",
        type=Path,
        default=None,
        help="architecture JSON written by 'chemprune search' (instead of the widths above)",
    )
    teach = p.add_argument_group("distillation")
    teach.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="trained checkpoint to learn from (same target and split: --subset, --seed)",
    )
    teach.add_argument(
        "--distill",
        choices=("output", "features"),
        default="features",
        help="with --teacher: its predictions, or also its per-block atom features (default)",
    )
    teach.add_argument("--distill-output-weight", type=nonneg_float, default=1.0)
    teach.add_argument("--distill-feature-weight", type=nonneg_float, default=1.0)
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=100)
    opt.add_argument("--batch-size", type=positive_int, default=32)
    opt.add_argument("--lr", type=positive_float, default=5e-4)
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="sgd: with --momentum")
    opt.add_argument("--momentum", type=below_one, default=0.9, help="SGD momentum")
    opt.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="plateau",
        help="plateau: scale the LR by --lr-factor after --lr-patience epochs without a better "
        "validation MAE, stop at --min-lr; cosine: anneal it every step from --lr to --min-lr "
        "over --epochs (more epochs on --resume stretch the rest of the curve)",
    )
    opt.add_argument(
        "--filter-grid",
        type=grid_knots,
        default=256,
        help="train on a grid: each step evaluates the filter networks at K knots over "
        "[0, cutoff] and interpolates the pairs (cubic Hermite; ~3x the steps/s of exact "
        "filters on 128/6 at the same validation MAE; validation too); the saved model is the "
        "exact one. Default 256; 0: exact filters per pair",
    )
    opt.add_argument(
        "--max-grad-norm",
        type=nonneg_float,
        default=0.0,
        help="clip the total gradient norm to this before each step (default 0: off; "
        "history.jsonl records the norms before clipping)",
    )
    opt.add_argument(
        "--warmup-steps",
        type=nonneg_int,
        default=0,
        help="cosine schedule: raise the LR linearly over this many first steps",
    )
    opt.add_argument(
        "--lr-factor", type=open_fraction, default=0.5, help="plateau schedule: LR factor"
    )
    opt.add_argument(
        "--lr-patience",
        type=nonneg_int,
        default=5,
        help="plateau schedule: epochs without improvement",
    )
    opt.add_argument(
        "--min-lr",
        type=nonneg_float,
        default=1e-6,
        help="plateau: stop when the LR falls to this; cosine: the final LR",
    )
    run = p.add_argument_group("run")
    run.add_argument(
        "--max-minutes",
        type=positive_float,
        default=None,
        help="training-time budget for this call; the run stays resumable",
    )
    run.add_argument(
        "--checkpoint-every",
        type=nonneg_int,
        default=500,
        help="also save last.pt every N steps (0: epoch ends only)",
    )
    run.add_argument("--threads", type=threads_int, default=None, help="torch CPU threads")
    run.add_argument(
        "--device", default="cpu", help="where to train: cpu (default), cuda, cuda:1, mps, ..."
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_distributed_options(p)
    p.set_defaults(run=run_train)
    global _PARSER
    _PARSER = p


def _add_distributed_options(p: argparse.ArgumentParser) -> None:
    from chemprune.engines.distributed.hooks import COMM_HOOKS
    from chemprune.engines.distributed.smoothout import SMOOTHOUT_SCHEDULES

    d = p.add_argument_group("several processes (torchrun, gloo)")
    d.add_argument(
        "--nproc", type=positive_int, default=None, help="processes on this machine (default 1)"
    )
    d.add_argument("--nnodes", type=positive_int, default=None, help="machines (default 1)")
    d.add_argument(
        "--rdzv-endpoint",
        default=None,
        help="HOST:PORT of the c10d rendezvous, the same on every machine (needed for --nnodes>1)",
    )
    d.add_argument("--rdzv-id", default="chemprune", help="job id shared by the machines")
    d.add_argument(
        "--max-restarts",
        type=nonneg_int,
        default=0,
        help="restart all processes up to N times after a failure; they resume from last.pt",
    )
    d.add_argument(
        "--comm-hook",
        default="allreduce",
        choices=COMM_HOOKS,
        help="gradient exchange: fp32 all-reduce (default), fp16, PowerSGD or TernGrad",
    )
    d.add_argument(
        "--terngrad-min-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="TernGrad: parameters with fewer than N values go in float32 (TernGrad's "
        "--size_to_binarize; default 1: every parameter ternary)",
    )
    d.add_argument(
        "--terngrad-fp32",
        default="",
        metavar="GLOBS",
        help="TernGrad: comma-separated name globs of parameters sent in float32, e.g. 'lin2.*' "
        "for SchNet's output layer (TernGrad's --noquantize_logits)",
    )
    d.add_argument(
        "--smoothout",
        type=nonneg_float,
        default=0.0,
        help="SmoothOut: uniform weight noise of this amplitude at each step (default 0: off)",
    )
    d.add_argument(
        "--smoothout-adaptive",
        action="store_true",
        help="adaptive SmoothOut: amplitude times each filter's norm",
    )
    d.add_argument(
        "--smoothout-chunk",
        type=nonneg_int,
        default=0,
        metavar="N",
        help="SmoothOut: a new noise draw for every N molecules of a process's batch (the "
        "authors' ghost batches; default 0: one draw per process and step)",
    )
    d.add_argument(
        "--smoothout-schedule",
        choices=SMOOTHOUT_SCHEDULES,
        default="constant",
        help="SmoothOut amplitude over the run (the authors' --smoothing-type): constant; "
        "anneal (a/sqrt((1+step)^0.55)); tanh (ramps from ~0 to a, centred mid-run)",
    )


# What each worker under torchrun is given back, by attribute (the option is ``--`` and the name
# with dashes): every option of ``train`` but the launcher's own (--nproc, --nnodes,
# --rdzv-endpoint, --rdzv-id, --max-restarts: torchrun's own parser would take some of them, e.g.
# --nproc as an ambiguous prefix of its --nproc-per-node). tests/cli/test_train_argv.py checks
# that this covers the parser and that the worker's command line parses back to the same run.
_WORKER_VALUES = (
    "target", "out", "init", "subset", "data_dir", "seed",
    "hidden", "filters", "interactions", "gaussians", "cutoff", "arch",
    "teacher", "distill", "distill_output_weight", "distill_feature_weight",
    "epochs", "batch_size", "lr", "optimizer", "momentum", "lr_schedule", "filter_grid",
    "max_grad_norm", "warmup_steps", "lr_factor", "lr_patience", "min_lr",
    "max_minutes", "checkpoint_every", "threads", "device",
    "comm_hook", "terngrad_min_size", "terngrad_fp32",
    "smoothout", "smoothout_chunk", "smoothout_schedule",
)  # fmt: skip
_WORKER_SWITCHES = ("resume", "no_progress", "json", "smoothout_adaptive")
LAUNCH_ONLY = ("nproc", "nnodes", "rdzv_endpoint", "rdzv_id", "max_restarts")
WORLD_SIZE_ENV = "CHEMPRUNE_WORLD_SIZE"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``train`` command line that gives ``args`` to each worker under torchrun (options
    left unset are left out)."""
    argv = ["train"]
    for name in _WORKER_VALUES:
        value = getattr(args, name)
        if value is not None:
            argv += [_flag(name), str(value)]
    argv += [_flag(name) for name in _WORKER_SWITCHES if getattr(args, name)]
    return argv


def _launch(args: argparse.Namespace, spec) -> int:
    """Re-run this command under torchrun with ``spec``'s processes; returns its exit code."""
    from chemprune.cli.errors import CliError
    from chemprune.common.runfolder import RunLock
    from chemprune.engines.distributed.launch import launch
    from chemprune.pipeline.train_state import LOCK_HELD_ENV, check_new_run

    if str(args.device) != "cpu":
        raise CliError(f"--device {args.device}: several processes train on the CPU only (gloo)")
    if not args.resume:
        check_new_run(args.out)
    load_dataset_and_split(args.data_dir, args.subset, args.seed)  # cache and split, made once
    where = f"{spec.nnodes} machines, " if spec.nnodes > 1 else ""
    print(
        f"chemprune train: starting {where}{spec.world_size} processes with torchrun "
        f"(gloo, {args.comm_hook} gradients, up to {spec.max_restarts} restarts)",
        flush=True,
    )
    env = {WORLD_SIZE_ENV: str(spec.world_size)}
    lock = None
    # one machine: this launcher holds the lock for its workers, across restarts; with several
    # machines the main rank locks the shared folder itself
    if spec.nnodes == 1:
        lock = RunLock(args.out, what="chemprune train (torchrun launcher)").acquire()
        env[LOCK_HELD_ENV] = str(args.out.resolve())
    try:
        code = launch(spec, ["chemprune", *worker_argv(args)], env=env)
    finally:
        if lock is not None:
            lock.release()
    if code != 0:
        raise CliError(f"distributed training failed: torchrun exited with code {code}", code)
    return 0


# TrainSettings and TrainJob fields whose option has another name (the rest: --field-name)
_OPTION_OF = {
    "hidden_channels": "hidden",
    "filter_channels": "filters",
    "num_interactions": "interactions",
    "num_gaussians": "gaussians",
}


def _option(field: str) -> str:
    return _flag(_OPTION_OF.get(field, field))


def settings_from_args(args: argparse.Namespace):
    """The :class:`~chemprune.pipeline.train_state.TrainSettings` and the
    :class:`~chemprune.pipeline.train_job.TrainJob` the options describe (nothing is read: the
    job reads ``--arch`` and ``--init``)."""
    from chemprune.pipeline.train_job import TrainJob
    from chemprune.pipeline.train_state import TrainSettings

    settings = TrainSettings(
        init=str(args.init.resolve()) if args.init else "",
        teacher=str(args.teacher.resolve()) if args.teacher else "",
        distill=args.distill if args.teacher else "none",
        distill_output_weight=args.distill_output_weight,
        distill_feature_weight=args.distill_feature_weight,
        target=args.target,
        hidden_channels=args.hidden,
        filter_channels=args.filters,
        num_interactions=args.interactions,
        num_gaussians=args.gaussians,
        cutoff=args.cutoff,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        max_grad_norm=args.max_grad_norm,
        filter_grid=args.filter_grid,
        lr_factor=args.lr_factor,
        lr_patience=args.lr_patience,
        min_lr=args.min_lr,
        seed=args.seed,
        comm_hook=args.comm_hook,
        terngrad_min_size=args.terngrad_min_size,
        terngrad_fp32=args.terngrad_fp32,
        smoothout=args.smoothout,
        smoothout_adaptive=args.smoothout_adaptive,
        smoothout_chunk=args.smoothout_chunk,
        smoothout_schedule=args.smoothout_schedule,
    )
    job = TrainJob(
        out=args.out,
        data_dir=args.data_dir,
        subset=args.subset,
        init=args.init,
        arch=args.arch,
        resume=args.resume,
        max_minutes=args.max_minutes,
        checkpoint_every=args.checkpoint_every,
        device=str(args.device),
        progress=not args.no_progress,
    )
    return settings, job


def run_train(args: argparse.Namespace) -> int:
    from chemprune.cli._common import resolve_device, set_threads
    from chemprune.cli.errors import EXIT_DIVERGED, EXIT_INTERRUPTED, CliError
    from chemprune.common.runfolder import check_output_path
    from chemprune.engines.distributed.context import WorldSizeError
    from chemprune.engines.distributed.launch import LaunchError, LaunchSpec, in_torchrun
    from chemprune.molecules.data.targets import get_target
    from chemprune.pipeline.train import TrainingDiverged, TrainingInterrupted
    from chemprune.pipeline.train_job import TrainJobError, run_train_job

    set_threads(args.threads)
    get_target(args.target)  # fail fast on an unknown target
    check_output_path(args.out, kind="folder")  # a run folder that can be made and written
    # (each option's own range is checked by its type, chemprune.common.options; the
    # combinations by the settings, before any process starts)
    settings, job = settings_from_args(args)
    try:
        settings.check(_option)
    except ValueError as err:
        raise CliError(str(err)) from None
    device = resolve_device(args.device)
    spec = LaunchSpec(
        nproc=1 if args.nproc is None else args.nproc,
        nnodes=1 if args.nnodes is None else args.nnodes,
        endpoint=args.rdzv_endpoint,
        rdzv_id=args.rdzv_id,
        max_restarts=args.max_restarts,
    )
    try:
        spec.validate()
    except LaunchError as err:
        raise CliError(str(err)) from None
    if spec.world_size > 1 and args.batch_size < spec.world_size:
        raise CliError(
            f"--batch-size {args.batch_size} is smaller than the {spec.world_size} processes "
            "(it is the global batch; each process needs at least one molecule)"
        )
    if not in_torchrun() and (spec.world_size > 1 or spec.endpoint):
        return _launch(args, spec)
    job = dataclasses.replace(job, device=str(device))
    if in_torchrun():  # the processes the launcher started, or those given to the user's torchrun
        expected = os.environ.get(WORLD_SIZE_ENV)
        if args.nproc is not None or args.nnodes is not None:
            expected = spec.world_size
        job = dataclasses.replace(job, world_size=None if expected is None else int(expected))
    try:
        summary = run_train_job(job, settings, name=_option)
    except (TrainJobError, WorldSizeError) as err:
        raise CliError(str(err)) from None
    except TrainingDiverged as err:
        raise CliError(str(err), EXIT_DIVERGED) from None
    except TrainingInterrupted as err:
        raise CliError(str(err), EXIT_INTERRUPTED) from None
    if summary is None:  # another rank than the main one of a torchrun job
        return 0
    if args.json:
        print(json_line(summary))
    else:
        print(
            f"done ({summary['stopped']}): {summary['epochs_done']} epochs, best validation MAE "
            f"{summary['best_val_mae']:.4f} {summary['unit']}; model: {summary['best']}"
        )
    return 0
