"""How both command lines (``chemprune``, ``reaction-nmt``) report a failure: one line on stderr
and an exit code; ``--debug`` (or ``CHEMPRUNE_DEBUG=1``) re-raises for the traceback.

The line is printed through :func:`chemprune.common.options.printable`: a name taken from a file
(a checkpoint's target, a path) cannot send terminal escape sequences or break the line.
:func:`quiet_libraries` silences the warnings of the libraries underneath (torch's multi-line
notices) for the duration of a command unless ``--debug``."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

from chemprune.common.options import printable

__all__ = ["EXIT_USAGE", "EXIT_INTERNAL", "first_line", "quiet_libraries", "report"]

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


@contextlib.contextmanager
def quiet_libraries(debug: bool) -> Iterator[None]:
    """Ignore every Python warning inside the block unless ``debug``.

    Neither command line warns through :mod:`warnings` about a user's input (those are
    ``error:``/``note:``/``warning:`` lines printed by the commands); what arrives there are
    the notices of torch, NumPy, RDKit's Python layer and OpenNMT-py about their own use
    (deprecations, TorchScript and ``torch.load`` notes), often many lines long, printed before
    or instead of the command's one line. ``--debug`` shows them."""
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
        yield


def report(prog: str, err: Exception, *, own: tuple[type[BaseException], ...] = ()) -> int:
    """Print ``err`` as ``prog: error: ...`` and return its exit code: 2 for the tool's ``own``
    error types and expected failures, 70 (with a request to report it) for anything else."""
    if isinstance(err, own):
        print(f"{prog}: error: {printable(err)}", file=sys.stderr)
        return int(getattr(err, "code", EXIT_USAGE))
    if isinstance(err, EXPECTED):
        msg = first_line(err)
        if isinstance(err, UnicodeDecodeError):
            msg = f"an input is not UTF-8 text ({msg})"
        elif isinstance(err, OSError) and err.filename and str(err.filename) not in msg:
            msg = f"{err.filename}: {msg}"
        print(f"{prog}: error: {printable(msg)}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{prog}: internal error: {type(err).__name__}: {printable(first_line(err))} (a bug; run with "
        "--debug for the traceback and report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL
