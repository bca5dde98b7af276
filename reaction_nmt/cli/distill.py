"""``reaction-nmt distill``: train a preset from a trained teacher (word- or sequence-level)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chemprune.common.options import fraction, positive_float, positive_int, threads_int
from reaction_nmt.presets import PRESETS, parse_overrides


def add_distill(sub) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a trained model (e.g. the mt preset) into a smaller preset",
        description=(
            "Train --preset in --out with a teacher checkpoint's knowledge. --mode word (default): "
            "OpenNMT-py's trainer with the loss (1-alpha)*CE(gold) + alpha*T^2*KL(teacher_T || "
            "student_T) per target token, the teacher run on every batch. --mode sequence: the "
            "teacher translates the training sources (beam search, best hypothesis) into "
            "--out/data_teacher, then ordinary training on them. The student uses the teacher's "
            "vocabulary. Extra '-option value' pairs are OpenNMT-py options (as for 'train')."
        ),
    )
    p.add_argument(
        "--teacher", type=Path, required=True, help="teacher checkpoint, or a run folder (its last)"
    )
    p.add_argument("--data", type=Path, required=True, help="folder written by 'prepare'")
    p.add_argument("--out", type=Path, required=True, help="student run folder")
    p.add_argument("--preset", choices=sorted(PRESETS), default="compact")
    p.add_argument("--mode", choices=("word", "sequence"), default="word")
    p.add_argument(
        "--temperature", type=positive_float, default=2.0, help="soft-target temperature (word)"
    )
    p.add_argument("--alpha", type=fraction, default=0.5, help="weight of the teacher term (word)")
    p.add_argument(
        "--cache-teacher", action="store_true",
        help="word mode: keep the teacher's logits of every training example in memory, so "
        "that later epochs do not run the teacher again (float16, at most 2 GiB)",
    )  # fmt: skip
    p.add_argument(
        "--cache-top-k", type=positive_int, default=None,
        help="with --cache-teacher: keep only the K largest teacher logits per token",
    )  # fmt: skip
    p.add_argument("--beam-size", type=positive_int, default=5, help="teacher beam (sequence)")
    p.add_argument(
        "--targets", choices=("teacher", "mixed"), default="teacher",
        help="sequence mode: teacher outputs only, or gold pairs plus differing teacher pairs",
    )  # fmt: skip
    p.add_argument(
        "--max-length", type=positive_int, default=300, help="longest teacher output (sequence)"
    )
    p.add_argument(
        "--max-minutes", type=positive_float, help="training budget; saves when it runs out"
    )
    p.add_argument("--threads", type=threads_int, default=None, help="torch CPU threads")
    p.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from chemprune.common.runfolder import RunLock
    from reaction_nmt import backend
    from reaction_nmt.distill import DistillError, distill
    from reaction_nmt.runfolder import check_new_run

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cache_top_k is not None and not args.cache_teacher:  # (ranges: the option types)
        raise DistillError("--cache-top-k needs --cache-teacher")

    def progress(done: int, total: int) -> None:
        print(f"teacher translated {done}/{total} training sources", file=sys.stderr, flush=True)

    check_new_run(args.out, resumable=False)
    with RunLock(args.out, what="reaction-nmt distill"):
        result = distill(
            teacher=args.teacher,
            data=args.data,
            out=args.out,
            preset=args.preset,
            mode=args.mode,
            temperature=args.temperature,
            alpha=args.alpha,
            max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None,
            overrides=parse_overrides(extra),
            beam_size=args.beam_size,
            targets=args.targets,
            max_length=args.max_length,
            cache_teacher=args.cache_teacher,
            cache_top_k=args.cache_top_k,
            progress=progress,
        )
    params = backend.count_parameters(result.checkpoint)
    why = "time budget" if result.stopped_by_budget else "train_steps"
    extra_info = ""
    if result.word_level:
        w = result.word_level
        extra_info = (
            f"; per token: gold CE {w['ce_per_token']:.3f}, KD {w['kd_per_token']:.3f}; "
            f"teacher ran on {w['teacher_forward_passes']} of {w['batches']} batches"
        )
    print(
        f"distilled ({args.mode}-level) {result.step} steps in {result.seconds:.0f} s "
        f"(stopped by {why}); {params:,} parameters; checkpoint {result.checkpoint}{extra_info}"
    )
    return 0
