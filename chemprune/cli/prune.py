"""``chemprune prune``: prune a trained SchNet checkpoint and save the smaller model."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from chemprune.common.options import (
    below_one,
    grid_knots,
    integer,
    json_line,
    nonneg_float,
    open_fraction,
    positive_float,
    positive_int,
    ramp_fraction,
    seed_int,
    threads_int,
)

DESCRIPTION = """Prune a SchNet checkpoint trained by chemprune. Unstructured pruning (default)
zeroes single weights; --structured removes whole units for real, so the saved model is smaller
and faster: the continuous-filter kernel of every interaction block (kernel, the default: its
filter channels and its filter network's hidden units together), the filter channels alone
(filter), the hidden units alone (filter_hidden), the blocks' atom-wise layer (interaction) or
the atom-basis width (atom_basis), whole interaction blocks (depth), alone or joined by '+'
(kernel+atom_basis). Say how much with --sparsity (fraction of units removed in every group;
of the blocks for depth) or --target-macs (fraction of the multiply-accumulates to keep).
--method ssl (structured sparsity learning) first trains with a group lasso over those units
for half the budget (--strength), then removes the weakest (--sparsity) or every unit it drove
below --threshold; --method force trains with force regularisation toward low rank, then splits
every linear layer of --layers into two thinner ones at --sparsity of its rank or at the rank
that keeps --rank-energy of its energy. A second call on the pruned file composes methods.
The pruned model is fine-tuned for --finetune-minutes (and/or --finetune-steps) on the
checkpoint's own training split and saved with its new widths; predict/evaluate use it
unchanged. During gate training and fine-tuning the dense model teaches the pruned one
(--distill features, the default: its predictions and its per-block atom features; output: the
predictions only; none)."""


def _blocks(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--blocks takes comma-separated integers, got {text!r}"
        ) from None


def _structured(text: str) -> str:
    from chemprune.molecules.schnet.prune_groups import SCHNET_GROUP_KINDS, expand_kind

    allowed = [k for k in SCHNET_GROUP_KINDS if k != "weight"]
    try:
        expand_kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--structured takes {', '.join(allowed)} or several joined by '+' (each width "
            f"once: kernel already holds filter and filter_hidden), got {text!r}"
        ) from None
    return text


def _layers(text: str) -> str:
    from chemprune.molecules.schnet.prune_groups import LAYER_FAMILIES

    if not text or any(part not in LAYER_FAMILIES for part in text.split("+")):
        raise argparse.ArgumentTypeError(
            f"--layers takes {', '.join(LAYER_FAMILIES)} or both joined by '+', got {text!r}"
        )
    return text


def _refit_layers(text: str) -> tuple[str, ...]:
    from chemprune.molecules.schnet.refit import LAYERS

    parts = tuple(x.strip() for x in text.split(",") if x.strip())
    if not parts or any(x not in LAYERS for x in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(
            f"--refit takes {' or '.join(LAYERS)} or both joined by ',', got {text!r}"
        )
    return parts


def add_parser(sub: argparse._SubParsersAction) -> None:
    from chemprune.engines.prune import PRUNERS

    p = sub.add_parser("prune", help="prune a trained SchNet", description=DESCRIPTION)
    p.add_argument("--model", required=True, type=Path, help="checkpoint to prune")
    p.add_argument("--method", required=True, choices=PRUNERS.names())
    amount = p.add_mutually_exclusive_group(required=True)
    amount.add_argument(
        "--sparsity", type=below_one, help="fraction of weights/channels to remove, in [0, 1)"
    )
    amount.add_argument(
        "--rank-energy",
        type=ramp_fraction,
        help="force: keep in every layer the rank holding this share of its squared singular "
        "values, in (0, 1]",
    )
    amount.add_argument(
        "--target-macs",
        type=open_fraction,
        help="structured only: keep at most this fraction of the MACs, in (0, 1); the sparsity "
        "is chosen to match",
    )
    p.add_argument(
        "--structured",
        nargs="?",
        const="kernel",
        default=None,
        type=_structured,
        help="remove whole units: kernel (default: filter channels + filter-network hidden "
        "units), filter, filter_hidden, interaction, atom_basis, or several joined by '+'",
    )
    p.add_argument(
        "--layers",
        default="atomwise+filter_network",
        type=_layers,
        help="force: the linear layers made low-rank in every block: atomwise (in2f, f2out, "
        "out), filter_network, or both joined by '+' (default)",
    )
    p.add_argument(
        "--strength",
        type=nonneg_float,
        default=None,
        help="ssl: group-lasso weight (default 1e-4); force: the force's weight (default 1e-3)",
    )
    p.add_argument(
        "--threshold",
        type=nonneg_float,
        default=None,
        help="ssl: remove every unit whose group norm is at most this after the regularised "
        "phase (the learned sparsity) instead of --sparsity's share",
    )
    p.add_argument(
        "--blocks",
        type=_blocks,
        default=None,
        help="interaction blocks to prune, e.g. 0,1,2 (default all)",
    )
    p.add_argument("--finetune-minutes", type=nonneg_float, default=0.0)
    p.add_argument(
        "--finetune-steps",
        type=positive_int,
        default=None,
        help="also stop after this many optimizer steps (gate training included)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="fine-tuning learning rate (default 1e-3: the peak rate of a typical SchNet "
        "training, i.e. learning-rate rewinding)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="cosine",
        help="fine-tuning after removal: cosine from --lr to --min-lr (default) or constant",
    )
    p.add_argument("--min-lr", type=nonneg_float, default=1e-6, help="end of the cosine schedule")
    p.add_argument(
        "--gradual",
        action="store_true",
        help="engines without gates (magnitude): remove units gradually over the first half of "
        "--finetune-steps instead of at once",
    )
    p.add_argument(
        "--distill",
        choices=("none", "output", "features"),
        default="features",
        help="the dense model teaches the pruned one: predictions and per-block atom features "
        "(features, default), predictions only (output), or not at all (none)",
    )
    p.add_argument(
        "--distill-output-weight",
        type=nonneg_float,
        default=1.0,
        help="weight of the prediction term (squared difference / the target's variance)",
    )
    p.add_argument(
        "--distill-feature-weight",
        type=nonneg_float,
        default=1.0,
        help="weight of the per-block feature term (normalised squared difference)",
    )
    p.add_argument(
        "--lam", type=nonneg_float, default=None, help="AutoPrune: gate regularisation strength"
    )
    p.add_argument(
        "--max-increase",
        type=nonneg_float,
        default=None,
        help="OLMP: allowed relative increase of the validation MAE (default 0.05)",
    )
    p.add_argument("--budget", type=positive_int, default=None, help="OLMP: candidate evaluations")
    p.add_argument(
        "--function",
        default=None,
        help="cdc: the discriminant scoring each channel (snr, fdr, symmetric_divergence "
        "(default), t_statistic), an expression of chemprune.engines.prune.evolve, or the JSON an "
        "evolution run wrote",
    )
    p.add_argument(
        "--target-bins",
        type=positive_int,
        default=None,
        help="cdc: the target's quantile bins that act as classes (default 5)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of the qm9-format CSVs the model was trained on",
    )
    p.add_argument(
        "--ema",
        type=below_one,
        default=0.0,
        help="validate, keep and save an exponential moving average of the weights with this "
        "decay during the fine-tuning after removal (e.g. 0.999; 0, the default: the weights "
        "themselves)",
    )
    p.add_argument(
        "--refit",
        type=_refit_layers,
        default=(),
        help="right after the removal, refit these layers of every block by least squares to "
        "reproduce the dense model's outputs on --refit-molecules training molecules: f2out, "
        "or f2out,out (the fine-tuning then starts there)",
    )
    p.add_argument(
        "--refit-molecules", type=positive_int, default=1024, help="molecules the refit sees"
    )
    p.add_argument(
        "--filter-grid",
        type=grid_knots,
        default=0,
        help="fine-tune on a grid: filters interpolated from K knots per step (student and "
        "teacher; cheaper per pair); the pruned model is saved exact. 0 (default): exact",
    )
    p.add_argument(
        "--tabulate",
        action="store_true",
        help="save the pruned model tabulated (as 'chemprune tabulate' does, checked against the "
        "exact pruned model first); --target-macs then counts the tabulated runtime's work",
    )
    p.add_argument(
        "--knots",
        type=integer(low=2, high=65536),
        default=None,
        help="with --tabulate: knots per table (default: the smallest passing of 128, 256, ...)",
    )
    p.add_argument("--out", required=True, type=Path, help="where to write the pruned checkpoint")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--device", default="cpu", help="where to fine-tune: cpu (default), cuda, ...")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_prune)


def _ranks(low_rank: dict | None) -> str:
    if not low_rank:
        return "-"
    ranks = [r for _, r in low_rank.values()]
    return f"{len(ranks)} layers, rank {min(ranks)}-{max(ranks)}"


def _table(report: dict) -> str:
    b, a = report["before"], report["after"]
    rows = [
        ("atom-basis width", str(b["hidden_channels"]), str(a["hidden_channels"])),
        ("filter channels per block", str(b["filter_channels"]), str(a["filter_channels"])),
        (
            "filter-network hidden",
            str(b["filter_hidden_channels"]),
            str(a["filter_hidden_channels"]),
        ),
        ("interaction widths", str(b["interaction_channels"]), str(a["interaction_channels"])),
        ("interaction blocks", str(len(b["filter_channels"])), str(len(a["filter_channels"]))),
        ("low-rank layers", "-", _ranks(report.get("low_rank"))),
        ("parameters", f"{b['params']:,}", f"{a['params']:,}"),
        ("nonzero parameters", f"{b['nonzero_params']:,}", f"{a['nonzero_params']:,}"),
        ("MACs (batch of 64)", f"{b['macs_per_batch64']:,}", f"{a['macs_per_batch64']:,}"),
        *(
            [("MACs tabulated (batch 64)", "", f"{report['tabulated']['macs_per_batch64']:,}")]
            if "tabulated" in report
            else []
        ),
        ("val MAE", f"{report['val_mae_before']:.4f}", f"{report['val_mae_after']:.4f}"),
    ]
    w = max(len(r[0]) for r in rows)
    lines = [f"{'':<{w}}  {'before':>24}  {'after':>24}"]
    lines += [f"{n:<{w}}  {x:>24}  {y:>24}" for n, x, y in rows]
    return "\n".join(lines)


def settings_from_args(args: argparse.Namespace):
    """The :class:`~chemprune.pipeline.prune_settings.PruneSettings` and
    :class:`~chemprune.pipeline.prune_job.PruneJob` the options describe (``CliError`` naming
    the option for a combination that cannot run)."""
    from chemprune.cli.errors import CliError
    from chemprune.engines.prune import PRUNERS
    from chemprune.pipeline.prune_job import PruneJob
    from chemprune.pipeline.prune_settings import PruneSettings

    engine_cls = PRUNERS.get(args.method)  # what the engine needs decides which flags apply
    by_rank = engine_cls.unit == "rank"
    if args.target_macs is not None and args.structured is None:
        raise CliError("--target-macs needs --structured (unstructured zeros save no MACs)")
    if args.rank_energy is not None and not by_rank:
        raise CliError(f"--rank-energy is for --method force, not {args.method}")
    if args.threshold is not None and not engine_cls.supports_threshold:
        raise CliError(f"--threshold is for --method ssl, not {args.method}")
    if by_rank and args.structured is not None:
        raise CliError(f"--method {args.method} makes layers low-rank: say which with --layers")
    if args.structured and "depth" in args.structured.split("+") and args.target_macs:
        raise CliError("--target-macs cannot count blocks: give --sparsity with depth")
    if args.min_lr > args.lr:
        raise CliError(f"--min-lr must be in [0, --lr], got {args.min_lr}")
    for flag, value in (("--function", args.function), ("--target-bins", args.target_bins)):
        if value is not None and not engine_cls.needs_data:
            raise CliError(f"{flag} is for engines that score from data (cdc), not {args.method}")
    if args.target_bins == 1:
        raise CliError("--target-bins must be at least 2")
    if args.knots is not None and not args.tabulate:
        raise CliError("--knots is for --tabulate")
    if args.strength is not None and not engine_cls.trains_first:
        raise CliError(f"--strength is for --method ssl or force, not {args.method}")
    if args.refit and (by_rank or (args.structured and "atom_basis" in args.structured)):
        raise CliError("--refit keeps every layer's outputs: not with force or atom_basis")
    options: dict = {}
    if args.function is not None:
        from chemprune.engines.prune.evolve import resolve_function

        try:
            options["function"] = resolve_function(args.function)
        except ValueError as err:
            raise CliError(f"--function: {err}") from None
    for name in ("lam", "max_increase", "budget", "target_bins", "strength"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    settings = PruneSettings(
        method=args.method,
        sparsity=0.0 if args.sparsity is None else args.sparsity,
        kind=args.layers if by_rank else args.structured or "weight",
        blocks=None if args.blocks is None else tuple(args.blocks),
        finetune_minutes=args.finetune_minutes,
        finetune_steps=args.finetune_steps,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        min_lr=args.min_lr,
        distill=args.distill,
        distill_output_weight=args.distill_output_weight,
        distill_feature_weight=args.distill_feature_weight,
        gradual=args.gradual,
        rank_energy=args.rank_energy,
        threshold=args.threshold,
        filter_grid=args.filter_grid,
        ema=args.ema,
        refit=args.refit,
        refit_molecules=args.refit_molecules,
        engine_options=options,
        seed=args.seed,
    )
    job = PruneJob(
        model=args.model, out=args.out, target_macs=args.target_macs, tabulate=args.tabulate,
        knots=args.knots, data_dir=args.data_dir, device=args.device,
    )  # fmt: skip
    return settings, job


def run_prune(args: argparse.Namespace) -> int:
    from chemprune.cli._common import resolve_device, set_threads
    from chemprune.cli.errors import EXIT_PARTIAL, CliError
    from chemprune.common.runfolder import check_output_path
    from chemprune.pipeline.prune_job import run_prune_job

    set_threads(args.threads)
    check_output_path(args.out, inputs=[("--model", args.model)])
    device = resolve_device(args.device)
    settings, job = settings_from_args(args)
    job = dataclasses.replace(job, device=str(device))
    outcome = run_prune_job(job, settings, progress=not args.no_progress)
    report = outcome.report
    if outcome.untabulated is not None:
        raise CliError(
            f"pruned model written exact (not tabulated) to {args.out}: {outcome.untabulated}",
            EXIT_PARTIAL,
        )
    if args.json:
        print(json_line({**report, "out": str(args.out)}))
    else:
        print(_table(report))
        kd = report["distill"]
        taught = "no distillation" if kd["mode"] == "none" else f"distilled ({kd['mode']})"
        print(
            f"saved {args.out} ({report['method']}, {report['kind']}, sparsity "
            f"{outcome.sparsity:.4g}; fine-tuned at lr {args.lr:g} {args.lr_schedule}, "
            f"{taught}); compression {report['compression']:.2f}x by nonzero parameters"
        )
    return 0
