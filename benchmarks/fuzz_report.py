"""Fuzz report: generated hostile inputs against every chemprune input surface, by outcome.

Surfaces (the oracles and generators of :mod:`chemprune.fuzz`, driven by hypothesis):

* ``smiles``: SMILES texts (drug-like molecules from hypothesis-rdkit, random strings over the
  SMILES alphabet with Unicode look-alikes and whitespace, known molecules with a character
  inserted) through ``smiles_to_structure``;
* ``xyz``: XYZ-like files (wrong, negative, huge or textual counts, NaN/inf/1e39 and coincident
  coordinates, odd elements, blank lines, stray bytes) through ``read_structure_file``;
* ``model``: byte mutations (bit flips, truncations, insertions, zeroed runs) of a released
  checkpoint through ``load_model``;
* ``argv``: odd values of every numeric option of ``chemprune``'s commands through its parser;
* ``reaction``: reaction inputs (those SMILES texts joined by '.', '>', spaces) through
  ``reaction-nmt predict``'s ``prepare_input``;
* ``corpus``: CSV/TSV corpora (plain, gzipped, or a .gz name on plain text; reaction columns
  under known and unknown names; split values right and wrong; cells with spaces, quotes,
  delimiters, CXSMILES extensions, stray bytes) through ``reaction-nmt prepare``;
* ``reaction_model``: byte mutations of the released reaction model (sparse-int8) and of its
  dense form, as ``reaction-nmt`` writes them, through the loader behind predict/evaluate.

Outcomes: ok, refused (a one-line error of the surface's own kind), crash, wrong (accepted but
not what the input says), hang, damaged (an input file changed). The goal (issue 22): no crash,
wrong, hang or damaged case over >= 10,000 cases per surface. Prints a table, writes JSON (with
up to 20 examples of every outcome but ok) and a PNG. Rows of surfaces not run this time are
kept from the existing JSON, each with its own command and timestamp (``--fresh`` drops them).

    .venv/bin/python benchmarks/fuzz_report.py --cases 10000
    .venv/bin/python benchmarks/fuzz_report.py --quick --out /tmp/f.json --plot /tmp/f.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from harness import header, loadavg, pyplot, save_figure, timestamp, write_results

ROOT = Path(__file__).resolve().parents[1]


def _reaction_model_reference(path: Path) -> tuple[bytes, dict]:
    """The released file itself, or (``dense:`` prefix) its dense form written to a temporary
    file by the project's own writer."""
    import tempfile

    from chemprune import fuzz
    from reaction_nmt.compress.storage import load_model, save_model

    if not str(path).startswith("dense:"):
        return fuzz.reaction_model_reference(path)
    with tempfile.TemporaryDirectory() as tmp:
        dense = Path(tmp) / "dense.pt"
        save_model(load_model(Path(str(path)[6:])), dense, "dense")
        return fuzz.reaction_model_reference(dense)


def run_surface(name: str, cases: int, model_path: Path, seed: int, label: str = "") -> dict:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from chemprune import fuzz
    from chemprune.cli import build_parser

    counts: Counter = Counter()
    examples: dict[str, list] = {}
    model = None
    if name == "model":
        from chemprune.molecules.checkpoint import load_model

        state = load_model(model_path)[0].state_dict()
        model = (model_path.read_bytes(), {k: v.clone() for k, v in state.items()})
    elif name == "reaction_model":
        model = _reaction_model_reference(model_path)
    strategy, judge = fuzz.surface(name, model=model, parser=build_parser)

    @hseed(seed)
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def drive(case):
        out = judge(case)
        counts[out.kind] += 1
        if out.kind != "ok" and len(examples.setdefault(out.kind, [])) < 20:
            examples[out.kind].append({"case": repr(case)[:300], "detail": out.detail})

    t0 = time.perf_counter()
    drive()
    return {
        "surface": label or name,
        "model": str(model_path) if model is not None else None,
        "timestamp": timestamp(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cases": sum(counts.values()),
        **{k: counts.get(k, 0) for k in fuzz.KINDS},
        "seconds": time.perf_counter() - t0,
        "examples": examples,
    }


def format_table(rows: list[dict]) -> str:
    from chemprune.fuzz import KINDS

    head = f"{'surface':<20} {'cases':>7} " + " ".join(f"{k:>8}" for k in KINDS) + f" {'s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = " ".join(f"{r[k]:>8,d}" for k in KINDS)
        lines.append(f"{r['surface']:<20} {r['cases']:>7,d} {cells} {r['seconds']:>7.0f}")
    bad = sum(r[k] for r in rows for k in ("crash", "wrong", "hang", "damaged"))
    lines.append(
        f"goal (no crash, wrong, hang or damaged case): {'met' if bad == 0 else 'NOT met'}"
    )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    from chemprune.fuzz import KINDS

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 3.8))
    left = [0] * len(rows)
    colors = {"ok": "#4c9a2a", "refused": "#7fa7d6", "crash": "#c0392b", "wrong": "#e67e22",
              "hang": "#8e44ad", "damaged": "#000000"}  # fmt: skip
    names = [r["surface"] for r in rows]
    for k in KINDS:
        vals = [r[k] / max(r["cases"], 1) for r in rows]
        ax.barh(names, vals, left=left, color=colors[k], label=k)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlabel("share of generated cases")
    ax.set_title(f"chemprune fuzz report ({rows[0]['cases']:,} cases per surface)")
    ax.legend(ncol=3, fontsize=8, loc="lower right")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000, help="cases per surface")
    p.add_argument("--surfaces", type=lambda s: s.split(","), default=None)
    p.add_argument("--model", type=Path, default=ROOT / "models/schnet_gap_small_pruned.pt")
    p.add_argument("--reaction-model", type=Path, default=ROOT / "models/uspto50k_compact.pt")
    p.add_argument("--fresh", action="store_true", help="drop rows of surfaces not run now")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="50 cases per surface")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/fuzz_report.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/fuzz_report.png")
    args = p.parse_args(argv)
    if args.quick:
        args.cases = 50
    from chemprune import fuzz

    t0 = time.perf_counter()
    load0 = loadavg()
    rows = []
    names = args.surfaces or [*fuzz.SURFACES[:-1], "reaction_model", "reaction_model_dense"]
    for name in names:
        surface, path = name, args.model
        if name == "reaction_model":
            path = args.reaction_model
        elif name == "reaction_model_dense":
            surface, path = "reaction_model", Path(f"dense:{args.reaction_model}")
        rows.append(run_surface(surface, args.cases, path, args.seed, label=name))
        print(f"{name}: {rows[-1]['cases']} cases in {rows[-1]['seconds']:.0f} s", flush=True)
    if not args.fresh and args.out.is_file():
        done = {r["surface"] for r in rows}
        kept = [r for r in json.loads(args.out.read_text())["rows"] if r["surface"] not in done]
        rows = kept + rows
    text = format_table(rows)
    print(text)
    result = {
        **header("fuzz_report", args),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "loadavg_start": load0, "loadavg_end": loadavg()},
        "rows": rows,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    write_results(args.out, result)
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    bad = sum(r[k] for r in rows for k in ("crash", "wrong", "hang", "damaged"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
