"""``reaction-nmt`` command line: tokenize, prepare, synth, train, average, translate,
evaluate, predict, compress, distill, classify.

Exit codes: 0 success; 1 some inputs were invalid (the others were still processed);
2 bad arguments, missing or malformed files, unusable checkpoints, run folders in use; 70 an
internal error (a bug: report it with the output of ``--debug``); 130 interrupted. Every failure
is one line on stderr; ``reaction-nmt --debug ...`` (or ``CHEMPRUNE_DEBUG=1``) shows the
traceback instead, and the libraries' own warnings (torch's and OpenNMT-py's notices), which are
silenced otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chemprune.common.failures import quiet_libraries, report

# OpenMP spin-waiting makes small CPU steps ~60x slower (ENVIRONMENT.md, trap 7).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# commands whose parser accepts extra OpenNMT-py '-option value' pairs
_PASS_THROUGH = {"train", "distill"}


def build_parser() -> argparse.ArgumentParser:
    from chemprune import __version__
    from chemprune.common.options import CheckedParser
    from reaction_nmt.cli import classify, compress, data, distill, infer, model

    p = CheckedParser(
        prog="reaction-nmt", description="Reactant SMILES to product SMILES as translation."
    )
    p.add_argument("--version", action="version", version=f"reaction-nmt {__version__}")
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error and OpenNMT-py's log lines",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    t = sub.add_parser(
        "tokenize",
        help="space-separated Molecular Transformer tokens",
        description="Print each SMILES (or reaction SMILES) as space-separated tokens.",
    )
    t.add_argument("smiles", nargs="*", help="SMILES strings")
    t.add_argument("--file", type=Path, help="file with one SMILES per line ('-': standard input)")
    t.set_defaults(func=run_tokenize)
    data.add_prepare(sub)
    data.add_spectators(sub)
    data.add_synth(sub)
    model.add_train(sub)
    model.add_average(sub)
    distill.add_distill(sub)
    infer.add_translate(sub)
    infer.add_evaluate(sub)
    infer.add_predict(sub)
    compress.add_compress(sub)
    classify.add_classify(sub)
    return p


def run_tokenize(args: argparse.Namespace) -> int:
    from chemprune.molecules.chem.inputs import read_input_lines
    from chemprune.molecules.chem.sanity import DEFAULT_LIMITS
    from reaction_nmt.tokenize import TokenizationError, tokenize

    items = list(args.smiles)
    if args.file is not None:
        lines, _ = read_input_lines(
            args.file,
            what="SMILES file",
            max_bytes=DEFAULT_LIMITS.max_file_bytes,
            comments=False,  # '#' is a SMILES bond
        )
        items += [line for _, line in lines]
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


def _expected_errors() -> tuple[type[BaseException], ...]:
    from reaction_nmt.backend import BackendError
    from reaction_nmt.compress.errors import CompressError
    from reaction_nmt.download import DownloadError
    from reaction_nmt.formats import DataFormatError
    from reaction_nmt.prepare import PrepareError
    from reaction_nmt.presets import PresetError
    from reaction_nmt.spectators import SpectatorError

    return (
        BackendError,
        CompressError,
        DataFormatError,
        DownloadError,
        PrepareError,
        PresetError,
        SpectatorError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with quiet_libraries("--debug" in argv or bool(os.environ.get("CHEMPRUNE_DEBUG"))):
        parser = build_parser()  # (imports torch)
        args, extra = parser.parse_known_args(argv)
    if extra and args.command not in _PASS_THROUGH:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = bool(args.debug or os.environ.get("CHEMPRUNE_DEBUG"))
    if debug:  # the backend's log lines too
        os.environ["CHEMPRUNE_DEBUG"] = "1"
    try:
        with quiet_libraries(debug):
            return args.func(args, extra) if args.command in _PASS_THROUGH else args.func(args)
    except KeyboardInterrupt:
        print("reaction-nmt: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        return report("reaction-nmt", err, own=_expected_errors())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
