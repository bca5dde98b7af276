"""How both command lines (``chemprune``, ``reaction-nmt``) report a failure: one line on stderr
and an exit code; ``--debug`` (or ``CHEMPRUNE_DEBUG=1``) re-raises for the traceback."""

from __future__ import annotations

import sys

__all__ = ["EXIT_USAGE", "EXIT_INTERNAL", "first_line", "report"]

EXIT_USAGE = 2
EXIT_INTERNAL = 70

# failures a user can cause: bad files, values, paths (the message names them)
EXPECTED = (OSError, ValueError, KeyError, EOFError, FloatingPointError)


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (a KeyError's key; the type when it has none)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def report(prog: str, err: Exception, *, own: tuple[type[BaseException], ...] = ()) -> int:
    """Print ``err`` as ``prog: error: ...`` and return its exit code: 2 for the tool's ``own``
    error types and expected failures, 70 (with a request to report it) for anything else."""
    if isinstance(err, own):
        print(f"{prog}: error: {err}", file=sys.stderr)
        return int(getattr(err, "code", EXIT_USAGE))
    if isinstance(err, EXPECTED):
        msg = first_line(err)
        if isinstance(err, UnicodeDecodeError):
            msg = f"an input is not UTF-8 text ({msg})"
        elif isinstance(err, OSError) and err.filename and str(err.filename) not in msg:
            msg = f"{err.filename}: {msg}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{prog}: internal error: {type(err).__name__}: {first_line(err)} (a bug; run with "
        "--debug for the traceback and report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL
