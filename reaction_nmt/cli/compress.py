"""``reaction-nmt compress``: OLMP magnitude pruning with grouping strategies, head/FF removal
and sparse storage of an OpenNMT-py reaction model.

Order: structured pruning first (``--structured heads,ff``: mask the weakest heads/units, retrain
masked, remove them), then OLMP (``--strategy``; ``none`` skips it) under the validation
constraint, then the file (``--storage``). Exit codes: 0 ok, 2 bad arguments or files.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from chemprune.common.atomic import atomic_write_text
from chemprune.common.options import (
    fraction,
    nonneg_float,
    nonneg_int,
    open_fraction,
    positive_float,
    positive_int,
    ramp_fraction,
    seed_int,
    threads_int,
)

STRATEGY_CHOICES = ("global", "layer", "type", "layer_type", "matrix", "none")


def _keep(text: str) -> int | float:
    """``4`` (a count) or ``0.5`` (a fraction)."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None


def add_compress(sub) -> None:
    from reaction_nmt.compress.olmp import WARM_START

    p = sub.add_parser(
        "compress",
        help="prune a model (OLMP thresholds per weight group, heads/FF removal), sparse files",
        description=(
            "Search one magnitude threshold per set of weight matrices (OLMP) so that validation "
            "top-1 drops at most --max-top1-drop points, retrain with masks, optionally remove "
            "attention heads and feed-forward units for real, and write the model densely or "
            "sparsely (indices + values, optional int8)."
        ),
    )
    p.add_argument("--model", type=Path, required=True, help="OpenNMT-py checkpoint")
    p.add_argument("--data", type=Path, required=True, help="prepared folder (valid + train)")
    p.add_argument("--out", type=Path, required=True, help="compressed model file")
    p.add_argument("--strategy", choices=STRATEGY_CHOICES, default="type",
                   help="threshold sets: global, per layer, per type, layer x type, per matrix")  # fmt: skip
    p.add_argument("--spec", type=Path, help="custom grouping (JSON/YAML: set -> glob patterns)")
    p.add_argument("--metric", choices=("top1", "seq", "ppl"), default="top1",
                   help="top1: greedy decoding, canonical match; seq: teacher-forced exact "
                   "match (fast); ppl: perplexity")  # fmt: skip
    p.add_argument("--max-top1-drop", type=nonneg_float, default=1.0,
                   help="allowed validation top-1 loss in points (top1/seq)")  # fmt: skip
    p.add_argument(
        "--max-ppl-rise", type=nonneg_float, default=0.05, help="allowed rise (ppl metric)"
    )
    p.add_argument("--target-sparsity", type=open_fraction, default=0.99,
                   help="the search is not rewarded beyond this sparsity")  # fmt: skip
    p.add_argument("--structured", default="", help="'heads', 'ff' or 'heads,ff'")
    p.add_argument(
        "--keep-heads", type=_keep, default=0.5, help="heads kept per layer (N or fraction)"
    )
    p.add_argument(
        "--keep-ff", type=_keep, default=0.5, help="FF units kept per layer (N or fraction)"
    )
    p.add_argument("--storage", choices=("dense", "sparse", "sparse-int8"), default="sparse")
    p.add_argument(
        "--valid-limit", type=positive_int, default=200, help="validation reactions used"
    )
    p.add_argument("--beam-size", type=positive_int, default=1, help="beam of the top1 metric")
    p.add_argument("--max-length", type=positive_int, default=300)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument(
        "--budget", type=positive_int, default=40, help="nevergrad evaluations per search"
    )
    p.add_argument(
        "--warm-start",
        type=nonneg_int,
        default=WARM_START,
        metavar="N",
        help="bisection evaluations before each search: the largest common threshold offset "
        f"that keeps the constraint, where the search starts (default {WARM_START}; 0: off)",
    )
    p.add_argument(
        "--rounds", type=nonneg_int, default=1, help="retrain + search rounds after the first"
    )
    p.add_argument(
        "--retrain-steps", type=nonneg_int, default=0, help="masked retraining steps per round"
    )
    p.add_argument("--retrain-minutes", type=positive_float, default=None, help="budget per round")
    p.add_argument("--teacher", type=Path, default=None,
                   help="retrain by word-level distillation from this checkpoint (e.g. --model "
                   "itself: the uncompressed model teaches the compressed one)")  # fmt: skip
    p.add_argument("--kd-alpha", type=fraction, default=0.5,
                   help="weight of the teacher term in retraining (with --teacher)")  # fmt: skip
    p.add_argument("--kd-temperature", type=positive_float, default=2.0,
                   help="soft-target temperature (with --teacher)")  # fmt: skip
    p.add_argument("--gradual", type=open_fraction, default=None, metavar="SPARSITY",
                   help="every retraining round also prunes gradually (cubic ramp, Zhu & Gupta) "
                   "from the last search's sparsity to this one; the next search checks the "
                   "constraint")  # fmt: skip
    p.add_argument("--gradual-ramp", type=ramp_fraction, default=0.75,
                   help="share of a round's steps over which --gradual ramps")  # fmt: skip
    p.add_argument("--gradual-every", type=positive_int, default=25,
                   help="steps between mask updates of --gradual")  # fmt: skip
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=threads_int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.set_defaults(func=run_compress)


def _check(args: argparse.Namespace):
    from reaction_nmt.compress import CompressError, read_spec
    from reaction_nmt.prepare import PreparedData

    if args.max_top1_drop < 0 or args.max_ppl_rise < 0:
        raise CompressError("the allowed drop must be >= 0")
    if not 0 <= args.target_sparsity < 1:
        raise CompressError(f"--target-sparsity must be in [0, 1), got {args.target_sparsity}")
    for flag in ("valid_limit", "budget", "batch_size", "beam_size"):
        if getattr(args, flag) < 1:
            raise CompressError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.warm_start < 0:
        raise CompressError(f"--warm-start must be >= 0, got {args.warm_start}")
    if args.rounds < 0 or args.retrain_steps < 0:
        raise CompressError("--rounds and --retrain-steps must be >= 0")
    if args.teacher is not None:
        if not args.retrain_steps:
            raise CompressError("--teacher acts in retraining: give --retrain-steps too")
        if not args.teacher.is_file():
            raise CompressError(f"--teacher {args.teacher}: no such file")
        if not 0 <= args.kd_alpha <= 1:
            raise CompressError(f"--kd-alpha must be in [0, 1], got {args.kd_alpha}")
        if not args.kd_temperature > 0:
            raise CompressError(f"--kd-temperature must be > 0, got {args.kd_temperature}")
    elif (args.kd_alpha, args.kd_temperature) != (0.5, 2.0):
        raise CompressError("--kd-alpha/--kd-temperature need --teacher")
    gradual = None
    if args.gradual is not None:
        from reaction_nmt.compress.gradual import GradualPruning

        if not args.retrain_steps or not args.rounds or args.strategy == "none":
            raise CompressError(
                "--gradual prunes in OLMP's retraining rounds: give --retrain-steps, --rounds "
                ">= 1 and a --strategy"
            )
        gradual = GradualPruning(args.gradual, ramp=args.gradual_ramp, every=args.gradual_every)
    elif (args.gradual_ramp, args.gradual_every) != (0.75, 25):
        raise CompressError("--gradual-ramp/--gradual-every need --gradual")
    kinds = {k.strip() for k in args.structured.split(",") if k.strip()}
    if kinds - {"heads", "ff"}:
        raise CompressError(f"--structured takes heads and/or ff, got {args.structured!r}")
    strategy = read_spec(args.spec) if args.spec else args.strategy
    data = PreparedData(args.data)
    src, tgt = data.src("valid"), data.tgt("valid")
    return kinds, strategy, gradual, data, src, tgt


def run_compress(args: argparse.Namespace) -> int:
    import torch

    from reaction_nmt.compress.pipeline import compress

    kinds, strategy, gradual, data, src, tgt = _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(
        prefix="compress-", dir=args.out.parent if args.out.parent.is_dir() else None
    ) as work:
        report = compress(
            model=args.model, data_dir=data.folder, valid=(src, tgt), out=args.out,
            work_dir=Path(work), strategy=None if strategy == "none" else strategy,
            metric=args.metric,
            max_drop=args.max_ppl_rise if args.metric == "ppl" else args.max_top1_drop,
            goal=args.target_sparsity, structured=kinds,
            keep={"heads": args.keep_heads, "ff": args.keep_ff}, storage=args.storage,
            valid_limit=args.valid_limit, beam_size=args.beam_size, batch_size=args.batch_size,
            max_length=args.max_length, budget=args.budget, warm_start=args.warm_start,
            rounds=args.rounds,
            retrain_steps=args.retrain_steps,
            retrain_seconds=None if args.retrain_minutes is None else 60 * args.retrain_minutes,
            seed=args.seed, teacher=args.teacher, kd_alpha=args.kd_alpha,
            kd_temperature=args.kd_temperature, gradual=gradual,
        )  # fmt: skip
    report["seconds"] = time.perf_counter() - start
    report["command"] = " ".join(sys.argv)
    print(summary_table(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, default=str) + "\n")
    return 0


def summary_table(report: dict) -> str:
    """Sparsity per set, metric before/after, parameters and file size."""
    lines = []
    olmp = report.get("olmp")
    if report.get("structured"):
        s = report["structured"]
        lines.append(
            f"structured: {s['heads_before']} -> {s['heads_after']} heads, "
            f"{s['ff_before']} -> {s['ff_after']} FF units "
            f"({s['params_before']:,} -> {s['params_after']:,} parameters)"
        )
    if report.get("teacher"):
        t = report["teacher"]
        lines.append(
            f"retraining distilled from {t['path']} (alpha {t['alpha']:g}, T {t['temperature']:g})"
        )
    if report.get("gradual"):
        g = report["gradual"]
        lines.append(f"retraining pruned gradually to {100 * g['target']:.1f}% "
                     f"(ramp over {100 * g['ramp']:.0f}% of each round)")  # fmt: skip
    if olmp:
        lines.append(f"{'set':<40} {'weights':>10} {'sparsity':>9}")
        for name, row in olmp["sets"].items():
            lines.append(f"{name:<40} {row['weights']:>10,} {100 * row['sparsity']:>8.2f}%")
        lines.append(f"{'all (' + olmp['strategy'] + ')':<40} {olmp['weights']:>10,} "
                     f"{100 * olmp['sparsity']:>8.2f}%")  # fmt: skip
    m = report["metric"]
    lines.append(
        f"validation {m['name']} ({m['reactions']} reactions): {m['before']:.2f} -> "
        f"{m['after']:.2f} (allowed drop {m['max_drop']})"
    )
    lines.append(
        f"file: {report['out']} ({report['storage']}, {report['size_bytes'] / 1e6:.2f} MB; "
        f"dense {report['dense_bytes'] / 1e6:.2f} MB)"
    )
    return "\n".join(lines)
