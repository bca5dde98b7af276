"""``chemprune`` command line: parse, validate, call the library. Configuration lives here only.

Exit codes: 0 success; 1 some inputs could not be predicted (the others were); 2 bad arguments or
unusable input files; 3 training diverged (NaN loss); 70 an internal error (a bug: please report
it with the output of ``--debug``); 130 interrupted (state saved). Every failure is one line on
stderr; ``chemprune --debug ...`` (or ``CHEMPRUNE_DEBUG=1``) shows the traceback instead, and
the libraries' own warnings (torch's notices), which are silenced otherwise. Names read from
files (a checkpoint's target and unit) are printed with non-printable characters escaped.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from chemprune.cli.errors import (
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CliError,
)
from chemprune.common.failures import quiet_libraries, report

# Small CPU steps are ~60x slower with OpenMP spin-waiting (see README); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = [
    "main",
    "build_parser",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_INTERNAL",
]


def build_parser() -> argparse.ArgumentParser:
    from chemprune import __version__
    from chemprune.cli import (
        demo,
        evaluate,
        export,
        generate,
        import_model,
        predict,
        prune,
        search,
        tabulate,
        train,
    )
    from chemprune.common.options import CheckedParser

    parser = CheckedParser(
        prog="chemprune",
        description="Train, evaluate and use SchNet models for QM9 properties.",
    )
    parser.add_argument("--version", action="version", version=f"chemprune {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        train, evaluate, predict, import_model, prune, tabulate, search, generate, export, demo
    ):  # fmt: skip
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with quiet_libraries("--debug" in argv or bool(os.environ.get("CHEMPRUNE_DEBUG"))):
        parser = build_parser()  # (imports torch)
        args = parser.parse_args(argv)
    debug = bool(args.debug or os.environ.get("CHEMPRUNE_DEBUG"))
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with quiet_libraries(debug):
            return int(run(args) or 0)
    except KeyboardInterrupt:
        print("chemprune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug:
            raise
        return report("chemprune", err, own=(CliError,))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
