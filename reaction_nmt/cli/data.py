"""``reaction-nmt prepare`` and ``reaction-nmt synth``: corpora from reaction files."""

from __future__ import annotations

import argparse
from pathlib import Path

from chemprune.common.options import nonneg_int, seed_int
from reaction_nmt.formats import FORMATS, SPLITS, DataFormatError, csv_splits, split_files
from reaction_nmt.prepare import MODES, PrepareError, prepare_corpora, read_spectator_pool


def add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="write OpenNMT-py corpora (forward: reactants -> product) and a manifest",
        description=(
            "Read reactions in one of the USPTO formats or a CSV, canonicalise them with RDKit, "
            "and write tokenised src-/tgt-{split}.txt, rejected-{split}.tsv (every unusable "
            "line and why) and manifest.json (counts, checksums)."
        ),
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="input format")
    p.add_argument("--data", type=Path, help="folder in the format's standard layout")
    for split in SPLITS:
        p.add_argument(f"--{split}", type=Path, help=f"{split} file (overrides --data)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mode", choices=MODES, default="mixed", help="source layout")
    p.add_argument(
        "--augment",
        type=nonneg_int,
        default=0,
        help="extra random-SMILES sources per train reaction",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--spectators",
        type=Path,
        metavar="FILE",
        help="atom-mapped reactions (USPTO-15k/MIT layout) whose spectator molecules (reagents, "
        "solvents, catalysts: inputs contributing no atom to the product) are drawn, a whole "
        "reaction's set at a time, into extra train sources",
    )
    p.add_argument(
        "--spectator-copies",
        type=nonneg_int,
        default=None,
        help="extra train sources with spectators per reaction (default 1 with --spectators): "
        "the first canonical, the others random SMILES in random order",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch USPTO-MIT (Jin et al.) into --data first (format 'mapped')",
    )
    p.add_argument("--url", default=None, help="archive URL for --download (default: canonical)")
    g = p.add_argument_group("CSV input")
    g.add_argument("--reaction-column", help="reaction-SMILES column (default: auto-detected)")
    g.add_argument("--reactants-column", help="reactants column (with --product-column)")
    g.add_argument("--product-column", help="product column (with --reactants-column)")
    g.add_argument("--split-column", help="column with train/valid/test, for a single --data CSV")
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    if args.download:
        from reaction_nmt.download import USPTO_MIT_URL, download_uspto_mit

        if args.format != "mapped" or args.data is None:
            raise PrepareError("--download needs --format mapped and a --data folder to fill")
        download_uspto_mit(args.data, url=args.url or USPTO_MIT_URL)
    inputs: dict[str, Path] = {}
    if args.data is not None:
        if args.format == "csv" and args.data.is_file():
            if not args.split_column:
                raise PrepareError(f"{args.data}: a single CSV needs --split-column")
            inputs = dict.fromkeys(csv_splits(args.data, args.split_column), args.data)
            if not inputs:
                raise DataFormatError(f"{args.data}: column {args.split_column!r} has no {SPLITS}")
        else:
            inputs = split_files(args.format, args.data)
    for split in SPLITS:
        if getattr(args, split) is not None:
            inputs[split] = getattr(args, split)
    if not inputs:
        raise PrepareError("give --data or at least one of --train/--valid/--test")
    csv_options = {
        "reaction_column": args.reaction_column,
        "reactants_column": args.reactants_column,
        "product_column": args.product_column,
        "split_column": args.split_column,
    }
    pool = None if args.spectators is None else read_spectator_pool(args.spectators)
    copies = args.spectator_copies  # prepare_corpora refuses copies without a pool
    if copies is None:
        copies = 1 if pool is not None else 0
    manifest = prepare_corpora(
        inputs,
        args.out,
        fmt=args.format,
        mode=args.mode,
        augment=args.augment,
        seed=args.seed,
        csv_options=csv_options,
        spectators=pool,
        spectator_copies=copies,
    )
    print(f"{'split':<6} {'read':>8} {'written':>8} {'rejected':>8}  reasons")
    for split, s in manifest["splits"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in s["rejected_by_reason"].items()) or "-"
        print(f"{split:<6} {s['read']:>8} {s['written']:>8} {s['rejected']:>8}  {reasons}")
    print(f"corpora and manifest.json in {args.out}")
    return 0


def add_spectators(sub) -> None:
    p = sub.add_parser(
        "add-spectators",
        help="a prepared split with spectator molecules added to every source (robustness test)",
        description=(
            "Reads src-/tgt-SPLIT.txt of a prepared folder and writes them to --out with a "
            "spectator set (reagents, solvents, catalysts of one reaction of --spectators, by "
            "frequency) added to every source, canonical, as 'reaction-nmt predict' writes a "
            "reaction typed with its reagents. Seeded. Evaluate with 'reaction-nmt evaluate "
            "--data OUT --split SPLIT'."
        ),
    )
    p.add_argument("--data", type=Path, required=True, help="prepared folder")
    p.add_argument("--split", default="test")
    p.add_argument("--spectators", type=Path, required=True, metavar="FILE",
                   help="atom-mapped reactions (USPTO-15k/MIT layout), plain or gzip")  # fmt: skip
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--out", type=Path, required=True, help="new folder")
    p.set_defaults(func=run_spectators)


def run_spectators(args: argparse.Namespace) -> int:
    from reaction_nmt.robustness import write_spectator_split

    pool = read_spectator_pool(args.spectators)
    manifest = write_spectator_split(
        args.data, args.out, pool=pool, split=args.split, seed=args.seed
    )
    stats = manifest["splits"][args.split]
    print(
        f"{stats['written']} {args.split} reactions, {stats['spectators_added_mean']:.2f} "
        f"spectator molecules added on average (pool: {len(pool.sets)} sets from "
        f"{args.spectators}) -> {args.out}"
    )
    return 0


def add_synth(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="write the synthetic template reaction set (train/valid/test CSV)",
        description="Reactions from RDKit templates over small building blocks, as CSV files.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=seed_int, default=0)
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from reaction_nmt import synthetic

    parts = synthetic.split(synthetic.generate(), seed=args.seed)
    for split, reactions in parts.items():
        path = synthetic.write_csv(reactions, args.out / f"{split}.csv")
        print(f"{split:<6} {len(reactions):>5} reactions  {path}")
    return 0
