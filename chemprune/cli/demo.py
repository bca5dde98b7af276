"""``chemprune demo``: the released QM9 gap models side by side on this machine — predictions
for named molecules next to QM9's values, test error, measured speed."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from chemprune.common.options import positive_int, threads_int

RELEASED = Path(__file__).resolve().parents[2] / "models"

#: (file, what it is), the reference first: the exact model, then what chemprune made of it
DEMO_MODELS = (
    ("schnet_gap_small.pt", "the released model (exact filters)"),
    ("schnet_gap_small_tab.pt", "the same, filters tabulated (lossless)"),
    ("schnet_gap_small_pruned_tab.pt", "pruned + tabulated"),
    ("schnet_gap_small_k32_scratch_tab.pt", "pruned width, trained from scratch, tabulated"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the released models side by side: predictions, test error, speed",
        description="Show the released QM9 HOMO-LUMO gap models on this machine: their "
        "predictions for a few named molecules from SMILES next to QM9's own values, their "
        "error on the test molecules none of them saw in training, and their measured speed "
        "(about a minute on 2 cores). Nothing is trained or written.",
    )
    p.add_argument(
        "--models",
        type=Path,
        nargs="+",
        default=None,
        help="checkpoints of one target and split, the reference first (default: the released "
        "gap models in models/)",
    )
    p.add_argument(
        "--threads",
        type=threads_int,
        default=1,
        help="threads the speed is timed on (default 1: the fastest per core on a small CPU)",
    )
    p.add_argument("--time-molecules", type=positive_int, default=1024,
                   help="test molecules timed at batch 64 (an eighth of them at batch 1)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(run=run_demo)


def _default_models() -> tuple[list[Path], dict[str, str]]:
    paths, what = [], {}
    for name, desc in DEMO_MODELS:
        if (RELEASED / name).exists():
            paths.append(RELEASED / name)
            what[Path(name).stem] = desc
    return paths, what


def run_demo(args: argparse.Namespace) -> int:
    from chemprune.cli.errors import CliError
    from chemprune.molecules.data.qm9 import load_qm9
    from chemprune.pipeline.showcase import ShowcaseSettings, showcase

    t0 = time.perf_counter()
    if args.models:
        models, what = list(args.models), {}
        for m in models:
            if not m.is_file():
                raise CliError(f"--models: {m} does not exist")
    else:
        models, what = _default_models()
        if not models:
            raise CliError(f"no released models in {RELEASED}; pass --models")
    settings = ShowcaseSettings(
        models=models, threads=args.threads, time_molecules_b64=args.time_molecules,
        time_molecules_b1=max(1, args.time_molecules // 8),
    )  # fmt: skip
    if not args.json:
        print(
            f"chemprune demo: {len(models)} models, QM9 from qm9pack (cached after the first run)"
        )
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = showcase(settings, load_qm9())
    result["load_average"] = load
    result["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    _print(result, what)
    return 0


def _print(result: dict, what: dict[str, str]) -> None:
    from chemprune.common.options import printable

    unit, rows = printable(result["unit"]), result["models"]  # (read from the model files)
    print(
        f"\n[1/2] {printable(result['target'])} ({unit}) predicted from SMILES (RDKit ETKDG + MMFF geometry; "
        "QM9's value is DFT on QM9's own geometry)"
    )
    short = [f"m{k + 1}" for k in range(len(rows))]
    print(f"      {'molecule':<13} {'SMILES':<10} {'QM9':>7} " + " ".join(f"{s:>7}" for s in short))
    for m in result["molecules"]:
        ref = "-" if m["qm9"] is None else f"{m['qm9']:.3f}"
        vals = " ".join(f"{v:7.3f}" for v in m["predictions"])
        print(f"      {m['name']:<13} {m['smiles']:<10} {ref:>7} {vals}")
    print(
        f"\n[2/2] test error on the {rows[0]['test_molecules']:,} test molecules of their split "
        f"(none seen in training) and speed on this CPU, {result['threads']} thread(s), "
        f"each model timed in turn; load average {result['load_average']:.1f} at the start: "
        "other jobs slow the timings"
    )
    head = (
        f"      {'':<3} {'model':<36} {'test MAE':>9} {'vs m1':>7} {'params':>8} {'tables':>8} "
        f"{'mol/s b64':>10} {'x':>6} {'mol/s b1':>9} {'x':>6}"
    )
    print(head)
    print("      " + "-" * (len(head) - 6))
    for s, r in zip(short, rows, strict=True):
        tables = f"{r['table_bytes'] / 1e6:.1f} MB" if r["table_bytes"] else "-"
        change = "" if s == "m1" else f"{r['mae_change']:+.1%}"
        print(
            f"      {s:<3} {r['name']:<36} {r['test_mae']:9.4f} {change:>7} {r['params']:>8,} "
            f"{tables:>8} {r['mol_per_s_b64']:>10,.0f} {r['speedup_b64']:>5.2f}x "
            f"{r['mol_per_s_b1']:>9,.0f} {r['speedup_b1']:>5.2f}x"
        )
    for s, r in zip(short, rows, strict=True):
        desc = what.get(r["name"], "")
        widths = f"hidden {r['hidden']}, filters {'/'.join(map(str, sorted(set(r['filters']))))}"
        print(f"      {s}: {desc + '; ' if desc else ''}{widths}; card: models/{r['name']}.md")
    print(
        f"\n({result['seconds']:.0f} s in all. Faster still: frozen TorchScript or "
        "`--runtime compiled` on predict/evaluate; docs/runtimes.md.)"
    )
    print("try: chemprune predict --model models/schnet_gap_small_tab.pt --smiles 'CCO' --json")
