"""``chemprune search``: find a cheaper SchNet by differentiable architecture search."""

from __future__ import annotations

import argparse
from pathlib import Path

from chemprune.common.options import (
    grid_knots,
    json_line,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    seed_int,
    threads_int,
)

DESCRIPTION = """Search a SchNet architecture cheaper than a trained one (--teacher) with DARTS:
every interaction block becomes a mixture of candidate operations (--candidates: cf<F>
continuous-filter convolutions with F filters, linear<F> convolutions whose filters are a
linear map of the radial basis, atomwise MLPs without message passing, skip, none), whose
weights learn on one half of the teacher's training split and whose architecture parameters on
the other (validation and test molecules are never used). The teacher guides the search
(--distill features: its predictions and, block by block, its atom features; output; none).
--target-macs F penalises expected MACs above F of the teacher's (--cost-weight). Writes the
derived architecture (--out, JSON) and prints the operation chosen per block with its MACs and
parameters."""


def _candidates(text: str) -> list[str]:
    from chemprune.molecules.schnet.nas import parse_candidate

    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        for n in names:
            parse_candidate(n, 1)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if len(names) < 2:
        raise argparse.ArgumentTypeError(
            f"--candidates needs at least two operations, got {text!r}"
        )
    return names


def _mac_fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(
            f"a fraction of the teacher's MACs in (0, 1], got {text!r}"
        )
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    from chemprune.engines.nas import NAS_ENGINES
    from chemprune.molecules.schnet.nas import DEFAULT_CANDIDATES

    p = sub.add_parser("search", help="architecture search guided by a trained SchNet",
                       description=DESCRIPTION)  # fmt: skip
    p.add_argument("--teacher", type=Path, required=True, help="trained chemprune checkpoint")
    p.add_argument("--out", type=Path, required=True, help="architecture JSON to write")
    p.add_argument("--data-dir", type=Path, default=None, help="the teacher's qm9pack-format CSVs")
    p.add_argument("--engine", choices=NAS_ENGINES.names(), default="darts_minus",
                   help="darts, or darts_minus (DARTS-' decaying auxiliary skip against the "
                   "collapse onto skip connections; needs --steps)")  # fmt: skip
    p.add_argument("--order", type=int, choices=(1, 2), default=1, help="DARTS' approximation")
    p.add_argument("--candidates", type=_candidates, default=list(DEFAULT_CANDIDATES),
                   help=f"comma-separated (default {','.join(DEFAULT_CANDIDATES)})")  # fmt: skip
    p.add_argument("--distill", choices=("none", "output", "features"), default="features")
    p.add_argument("--target-macs", type=_mac_fraction, default=None,
                   help="penalise expected MACs above this fraction of the teacher's")  # fmt: skip
    p.add_argument("--cost-weight", type=nonneg_float, default=1.0)
    p.add_argument("--steps", type=positive_int, default=None, help="search steps")
    p.add_argument("--minutes", type=positive_float, default=None, help="time budget")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=positive_float, default=5e-4, help="weights (Adam)")
    p.add_argument("--arch-lr", type=positive_float, default=3e-3, help="alphas (Adam)")
    p.add_argument("--warmup-steps", type=nonneg_int, default=None,
                   help="train the weights only for the first N steps (default: 30%% of --steps, "
                   "0 with --minutes alone)")  # fmt: skip
    p.add_argument(
        "--filter-grid",
        type=grid_knots,
        default=0,
        help="search on a grid: the supernet's and the teacher's filters interpolated from K "
        "knots per step (cheaper per pair); 0 (default): exact",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_search)


def _table(report: dict) -> str:
    lines = [f"{'block':>5}  {'chosen':<10} {'MMACs':>8}  weights"]
    for b in report["blocks"]:
        top = sorted(b["weights"].items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in top)
        lines.append(f"{b['block']:>5}  {b['chosen']:<10} {b['macs'] / 1e6:>8.2f}  {shown}")
    d, t = report["derived"], report["teacher"]
    if "config" in d:
        lines.append(
            f"derived: {d['config']['num_interactions']} blocks, {d['parameters']:,} parameters "
            f"(teacher {t['parameters']:,}), {d['macs'] / 1e6:.1f} MMACs on 64 molecules "
            f"= {d['macs_fraction']:.1%} of the teacher's"
        )
    return "\n".join(lines)


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def settings_from_args(args: argparse.Namespace):
    """The :class:`~chemprune.pipeline.search_settings.SearchSettings` and
    :class:`~chemprune.pipeline.search_job.SearchJob` the options describe (``CliError`` naming
    the option for a combination that cannot run)."""
    from chemprune.cli.errors import CliError
    from chemprune.pipeline.search_job import SearchJob
    from chemprune.pipeline.search_settings import SearchSettings

    settings = SearchSettings(
        engine=args.engine, order=args.order, distill=args.distill,
        candidates=tuple(args.candidates), target_macs=args.target_macs,
        cost_weight=args.cost_weight, steps=args.steps, minutes=args.minutes,
        batch_size=args.batch_size, lr=args.lr, arch_lr=args.arch_lr, seed=args.seed,
        warmup_steps=args.warmup_steps, filter_grid=args.filter_grid,
    )  # fmt: skip
    try:
        settings.check(_option)
    except ValueError as err:
        raise CliError(str(err)) from None
    return settings, SearchJob(teacher=args.teacher, out=args.out, data_dir=args.data_dir)


def run_search(args: argparse.Namespace) -> int:
    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import CliError
    from chemprune.common.runfolder import check_output_path
    from chemprune.pipeline.search_job import run_search_job

    set_threads(args.threads)
    settings, job = settings_from_args(args)
    check_output_path(args.out, inputs=[("--teacher", args.teacher)])
    report = run_search_job(job, settings, progress=not args.no_progress)
    if "config" not in report["derived"]:
        raise CliError(report["derived"]["error"], 1)
    if args.json:
        print(
            json_line({k: v for k, v in report.items() if k != "history"} | {"out": str(args.out)})
        )
    else:
        print(_table(report))
        print(f"wrote {args.out} ({report['steps']} steps in {report['seconds']:.0f} s)")
    return 0
