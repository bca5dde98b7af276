"""``reaction-nmt train`` and ``reaction-nmt average``: OpenNMT-py training from presets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chemprune.common.options import positive_float, positive_int, threads_int
from reaction_nmt.prepare import PreparedData
from reaction_nmt.presets import PRESETS, build_config, parse_overrides, write_vocab

RUN_INFO = "reaction_nmt.json"  # reaction_nmt.runfolder.RUN_INFO (that module loads torch)


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a transformer with OpenNMT-py from a preset",
        description=(
            "Write the OpenNMT-py YAML config (preset + overrides) and the shared vocabulary into "
            "--out and train with OpenNMT-py's trainer. Extra '-option value' pairs are "
            "OpenNMT-py options that override the preset (e.g. -train_steps 10 -batch_size 1024)."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="folder written by 'prepare'")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, config)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument(
        "--max-minutes", type=positive_float, help="wall-clock budget; saves when it runs out"
    )
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--threads", type=threads_int, default=None, help="torch CPU threads")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from chemprune.common.runfolder import RunLock
    from reaction_nmt.runfolder import check_new_run

    if args.threads:
        torch.set_num_threads(args.threads)
    data = PreparedData(args.data)
    overrides = parse_overrides(extra)
    if not args.resume:
        check_new_run(args.out)  # before the lock creates the folder
    with RunLock(args.out, what="reaction-nmt train"):
        return _train_locked(args, data, overrides)


def _train_locked(args: argparse.Namespace, data: PreparedData, overrides: dict) -> int:
    from reaction_nmt import backend
    from reaction_nmt.runfolder import check_new_run, check_resume

    manifest = data.manifest
    train_files = [data.src("train"), data.tgt("train")]
    train_from = None
    # checked while no other writer can change the folder, before anything in it is rewritten
    if args.resume:
        train_from = check_resume(args.out, preset=args.preset, data=args.data)
    else:
        check_new_run(args.out)
    config = build_config(
        preset=args.preset,
        data_dir=args.data,
        run_dir=args.out,
        overrides=overrides,
        train_from=train_from,
    )
    bad = backend.unknown_options(config)  # before any file is written
    if bad:
        raise backend.BackendError(f"unknown OpenNMT-py option(s): {', '.join(bad)}")
    vocab = args.out / "vocab.txt"
    if not (args.resume and vocab.is_file()):
        write_vocab(train_files, vocab)
    info = {
        "preset": args.preset,
        "overrides": overrides,
        "data": str(args.data.resolve()),
        "mode": manifest.get("mode", "mixed"),
        "backend": f"OpenNMT-py {backend.onmt_version()}",
    }
    (args.out / RUN_INFO).write_text(json.dumps(info, indent=2) + "\n")
    max_seconds = args.max_minutes * 60 if args.max_minutes is not None else None
    result = backend.train(config, max_seconds=max_seconds)
    params = backend.count_parameters(result.checkpoint)
    why = "time budget" if result.stopped_by_budget else "train_steps"
    print(
        f"trained {result.step} steps in {result.seconds:.0f} s (stopped by {why}); "
        f"{params:,} parameters; checkpoint {result.checkpoint}"
    )
    return 0


def add_average(sub) -> None:
    p = sub.add_parser(
        "average",
        help="average the weights of a run's last checkpoints",
        description="Element-wise mean of checkpoints (the last --last of --run, or --models).",
    )
    p.add_argument("--run", type=Path, help="run folder")
    p.add_argument(
        "--last", type=positive_int, default=5, help="how many of the run's last checkpoints"
    )
    p.add_argument("--models", type=Path, nargs="+", help="explicit checkpoint files")
    p.add_argument("--out", type=Path, required=True, help="averaged checkpoint")
    p.set_defaults(func=run_average)


def run_average(args: argparse.Namespace) -> int:
    from chemprune.common.runfolder import check_output_path
    from reaction_nmt import backend

    if args.models:
        paths = list(args.models)
    elif args.run is not None:
        paths = backend.checkpoints(args.run)[-args.last :]
        if not paths:
            raise backend.BackendError(f"{args.run} has no checkpoints")
    else:
        raise backend.BackendError("give --run or --models")
    flag = "--models" if args.models else "--run"
    check_output_path(args.out, inputs=[(f"{flag} ({p.name})", p) for p in paths])
    backend.average_checkpoints(paths, args.out)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {args.out}")
    return 0
