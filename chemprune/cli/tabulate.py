"""``chemprune tabulate``: a model whose filters are read from tables, checked before it is
written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chemprune.common.options import integer, positive_float, positive_int, threads_int

DESCRIPTION = """Replace every interaction block's filter network by a table of cubic pieces
over the pair distance (the same model, several times faster), then check it against the exact
model on the model's validation molecules (energies; forces on a sample) and write it only if it
passes: mean |dE| at most 1% of the model's validation MAE and max |dE| at most twice the
float32 floor (the exact model's own deviation from its float64 evaluation), or max |dE| at most
--tolerance. Without --knots the smallest count from 128 up (doubling) that passes is taken.
Prints knots, table size, max/mean |dE|, max |dF| and speed at batch 1 and 64."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tabulate", help="tabulate a model's filters (faster, checked)", description=DESCRIPTION
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint (.pt)")
    p.add_argument("--out", required=True, type=Path, help="tabulated checkpoint to write")
    p.add_argument(
        "--knots", type=integer(low=2, high=65536), default=None,
        help="knots per table (default: the smallest of 128, 256, ... 8192 that passes)",
    )  # fmt: skip
    p.add_argument(
        "--tolerance", type=positive_float, default=None,
        help="max |dE| allowed (target unit), instead of the default criterion",
    )  # fmt: skip
    p.add_argument(
        "--molecules", type=positive_int, default=2000,
        help="validation molecules to check energies on (default 2000)",
    )  # fmt: skip
    p.add_argument(
        "--force-molecules", type=positive_int, default=100,
        help="of those, molecules whose forces are compared (default 100)",
    )  # fmt: skip
    p.add_argument(
        "--time-molecules", type=integer(low=0), default=512,
        help="molecules timed at batch 64 (a quarter at batch 1); 0: no timing",
    )  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="qm9-format CSV folder")
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(run=run_tabulate)


def run_tabulate(args: argparse.Namespace) -> int:
    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import CliError
    from chemprune.common.atomic import atomic_save
    from chemprune.common.options import printable
    from chemprune.common.runfolder import check_output_path
    from chemprune.deploy.tabulate import TabulateSettings, TabulationFailed, tabulate_and_check
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.pipeline.trained import load_trained

    def tabulable(model, ckpt, parts) -> None:
        if all(k in ("tabulated", "atomwise") for k in model.block_kinds):
            raise CliError(
                f"model file {args.model} is already tabulated (tabulate its exact parent)"
            )
        if parts is None:
            raise CliError(f"model file {args.model} records no validation molecules to check on")

    check_output_path(args.out, inputs=[("--model", args.model)])
    set_threads(args.threads)
    trained = load_trained(args.model, args.data_dir, before_data=tabulable)
    model, ckpt, mset = trained.model, trained.ckpt, trained.mset
    val = trained.parts["val"]
    settings = TabulateSettings(
        knots=args.knots,
        molecules=args.molecules,
        force_molecules=args.force_molecules,
        tolerance=args.tolerance,
        time_molecules=args.time_molecules,
    )
    try:
        tab, report = tabulate_and_check(model, mset, val, settings)
    except TabulationFailed as err:
        if args.json:
            print(json.dumps(err.report))
        raise CliError(f"{args.model}: {err}") from None
    report["source"] = str(args.model)
    keep = {k: v for k, v in ckpt.items() if k not in _REBUILT}
    out = model_checkpoint(
        tab,
        target=ckpt["target"],
        data=ckpt.get("data"),
        metrics=ckpt.get("metrics"),
        extra={**keep, "tabulation": report},
    )
    atomic_save(out, args.out)
    if args.json:
        print(json.dumps(report))
        return 0
    unit = printable(ckpt["target"].get("unit", ""))
    print(_summary(report, unit, args.out))
    return 0


#: checkpoint sections model_checkpoint writes anew
_REBUILT = {
    "format", "format_version", "chemprune_version", "config", "state_dict", "target",
    "normalization", "data", "metrics", "integrity", "training", "tabulation",
}  # fmt: skip


def _summary(r: dict, unit: str, out: Path) -> str:
    lines = [
        f"knots {r['knots']} per block, tables {r['table_bytes'] / 1e6:.2f} MB",
        f"{r['molecules']} validation molecules: max |dE| {r['max_abs_dE']:.2e} {unit}, "
        f"mean |dE| {r['mean_abs_dE']:.2e} {unit} (exact model's MAE {r['exact_val_mae']:.4g}, "
        f"float32 floor max {r['float32_floor']['max']:.2e})",
        f"{r['force_molecules']} molecules: max |dF| {r['max_abs_dF']:.2e} {unit}/A",
    ]
    if "speed" in r:
        s = r["speed"]
        lines.append(
            f"speed ({r['threads']} thread(s), eager): batch 64 "
            f"{s['exact']['mol_per_s_b64']:.0f} -> {s['tabulated']['mol_per_s_b64']:.0f} mol/s "
            f"({r['speedup_b64']:.2f}x), batch 1 {s['exact']['mol_per_s_b1']:.0f} -> "
            f"{s['tabulated']['mol_per_s_b1']:.0f} mol/s ({r['speedup_b1']:.2f}x)"
        )
    lines.append(f"wrote {out}")
    return "\n".join(lines)
