"""``chemprune train``: train a SchNet on QM9 (or QM9-format CSV files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chemprune.cli._common import load_dataset_and_split

DESCRIPTION = """Train SchNet on one QM9 target. The run folder gets last.pt (resumable state,
saved atomically at every epoch end, every --checkpoint-every steps and on Ctrl-C/SIGTERM),
best.pt (lowest validation MAE; what predict/evaluate take) and history.jsonl."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a SchNet on QM9", description=DESCRIPTION)
    p.add_argument(
        "--target", default="gap", help="QM9 target (gap, homo, lumo, U0, U0_atom, mu, alpha, ...)"
    )
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    data = p.add_argument_group("data")
    data.add_argument(
        "--subset",
        type=int,
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
        type=int,
        default=0,
        help="seed of the split, the initialisation and the batch order",
    )
    model = p.add_argument_group("model")
    model.add_argument("--hidden", type=int, default=128, help="atom-basis width")
    model.add_argument("--filters", type=int, default=128, help="filter channels per block")
    model.add_argument("--interactions", type=int, default=6)
    model.add_argument("--gaussians", type=int, default=50)
    model.add_argument("--cutoff", type=float, default=5.0, help="Angstrom")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=100)
    opt.add_argument("--batch-size", type=int, default=32)
    opt.add_argument("--lr", type=float, default=5e-4)
    opt.add_argument("--lr-factor", type=float, default=0.5, help="plateau schedule: LR factor")
    opt.add_argument(
        "--lr-patience", type=int, default=5, help="plateau schedule: epochs without improvement"
    )
    opt.add_argument("--min-lr", type=float, default=1e-6, help="stop when the LR falls to this")
    run = p.add_argument_group("run")
    run.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="training-time budget for this call; the run stays resumable",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        help="also save last.pt every N steps (0: epoch ends only)",
    )
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from chemprune.cli import EXIT_DIVERGED, EXIT_INTERRUPTED, CliError, set_threads
    from chemprune.data.targets import get_target
    from chemprune.train import TrainingDiverged, TrainingInterrupted, TrainSettings, train

    set_threads(args.threads)
    get_target(args.target)  # fail fast on an unknown target
    for name in ("epochs", "batch_size", "hidden", "filters", "interactions"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise CliError(f"--lr must be positive, got {args.lr}")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise CliError(f"--max-minutes must be positive, got {args.max_minutes}")
    data, split, source = load_dataset_and_split(args.data_dir, args.subset, args.seed)
    settings = TrainSettings(
        target=args.target,
        hidden_channels=args.hidden,
        filter_channels=args.filters,
        num_interactions=args.interactions,
        num_gaussians=args.gaussians,
        cutoff=args.cutoff,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_factor=args.lr_factor,
        lr_patience=args.lr_patience,
        min_lr=args.min_lr,
        seed=args.seed,
    )
    print(
        f"chemprune train: {args.target}, {split.sizes[0]}/{split.sizes[1]}/{split.sizes[2]} "
        f"train/val/test molecules from {source}, run folder {args.out}"
    )
    try:
        summary = train(
            data,
            split,
            args.out,
            settings=settings,
            resume=args.resume,
            max_minutes=args.max_minutes,
            checkpoint_every=args.checkpoint_every,
            data_source=source,
            progress=not args.no_progress,
        )
    except TrainingDiverged as err:
        raise CliError(str(err), EXIT_DIVERGED) from None
    except TrainingInterrupted as err:
        raise CliError(str(err), EXIT_INTERRUPTED) from None
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"done ({summary['stopped']}): {summary['epochs_done']} epochs, best validation MAE "
            f"{summary['best_val_mae']:.4f} {summary['unit']}; model: {summary['best']}"
        )
    return 0
