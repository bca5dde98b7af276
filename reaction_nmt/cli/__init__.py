"""``reaction-nmt`` command line.

Only ``tokenize`` exists so far; data preparation, OpenNMT-py training, translation and
evaluation come with the reaction_nmt issue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from chemprune import __version__

    p = argparse.ArgumentParser(
        prog="reaction-nmt", description="Reactant SMILES to product SMILES as translation."
    )
    p.add_argument("--version", action="version", version=f"reaction-nmt {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    t = sub.add_parser(
        "tokenize",
        help="space-separated Molecular Transformer tokens",
        description="Print each SMILES (or reaction SMILES) as space-separated tokens.",
    )
    t.add_argument("smiles", nargs="*", help="SMILES strings")
    t.add_argument("--file", type=Path, help="file with one SMILES per line")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from reaction_nmt.tokenize import TokenizationError, tokenize

    args = build_parser().parse_args(argv)
    items = list(args.smiles)
    if args.file is not None:
        if not args.file.is_file():
            print(f"reaction-nmt: error: {args.file} does not exist", file=sys.stderr)
            return 2
        items += [line.strip() for line in args.file.read_text().splitlines() if line.strip()]
    if not items:
        print("reaction-nmt: error: no SMILES given", file=sys.stderr)
        return 2
    failed = 0
    for smi in items:
        try:
            print(" ".join(tokenize(smi)))
        except TokenizationError as err:
            failed += 1
            print(f"reaction-nmt: error: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
