"""Checked numeric option types for argparse: a bad value is a one-line usage error naming the
flag (``argument --batch-size: must be an integer >= 1, got '0'``), never a traceback, a NaN
that disables a check, or a negative number read as "all but N"."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable

__all__ = [
    "integer",
    "number",
    "positive_int",
    "nonneg_int",
    "positive_float",
    "nonneg_float",
    "fraction",
    "open_fraction",
    "finite_float",
    "below_one",
    "ramp_fraction",
    "seed_int",
    "threads_int",
    "json_line",
    "printable",
    "grid_knots",
    "CheckedParser",
    "MAX_SEED",
    "MAX_THREADS",
]

MAX_SEED = 2**32 - 1  # numpy's and RDKit's seeds are 32-bit
MAX_THREADS = 4 * (os.cpu_count() or 1) + 64


def _fail(what: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"must be {what}, got {text!r}")


def integer(*, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]`` (either bound optional)."""
    what = "an integer" + (
        f" in [{low}, {high}]"
        if low is not None and high is not None
        else f" >= {low}"
        if low is not None
        else f" <= {high}"
        if high is not None
        else ""
    )

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise _fail(what, text) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise _fail(what, text)
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def number(
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite float in the interval (NaN and inf are refused)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    what = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise _fail(what, text) from None
        if not math.isfinite(value):
            raise _fail(what, text)
        if low is not None and (value < low or (low_open and value == low)):
            raise _fail(what, text)
        if high is not None and (value > high or (high_open and value == high)):
            raise _fail(what, text)
        return value

    parse.__name__ = "number"
    return parse


positive_int = integer(low=1)
nonneg_int = integer(low=0)
positive_float = number(low=0.0, low_open=True)
nonneg_float = number(low=0.0)
fraction = number(low=0.0, high=1.0)  # [0, 1]
open_fraction = number(low=0.0, high=1.0, low_open=True, high_open=True)  # (0, 1)
seed_int = integer(low=0, high=MAX_SEED)
threads_int = integer(low=1, high=MAX_THREADS)
finite_float = number()
below_one = number(low=0.0, high=1.0, high_open=True)  # [0, 1): a sparsity, a momentum
ramp_fraction = number(low=0.0, high=1.0, low_open=True)  # (0, 1]


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_line(obj) -> str:
    """``obj`` as one line of strict JSON: a NaN or infinite number (e.g. the best validation
    MAE of a run that finished no epoch) becomes ``null``, never the invalid ``NaN``."""
    return json.dumps(_finite(obj), allow_nan=False, default=str)


def printable(text: object) -> str:
    """``text`` as it may be printed on a terminal: every character that is not printable
    (control characters such as ESC, which starts a terminal escape sequence, line breaks, tabs,
    bidirectional overrides, lone surrogates) becomes a ``\\x..``, ``\\u....`` or
    ``\\U........`` escape; letters of any script stay as they are.

    Every name a command prints that comes from a file (a checkpoint's target name and unit, a
    molecule's name in a SMILES file, a token of a model's vocabulary) goes through it, and so
    does every error line (:func:`chemprune.common.failures.report`)."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in s)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class CheckedParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses a single-value option left without its value.

    Python 3.11's argparse takes ``--lr=--`` as an empty list without calling the option's
    type (found by ``tests/test_fuzz.py``); the value then fails far from the command line.
    (A type may return a list, as ``--blocks 0,1`` does; only the empty one is refused.)
    Sub-parsers made with ``add_subparsers`` inherit this class.
    """

    def parse_known_args(self, args=None, namespace=None):
        ns, extra = super().parse_known_args(args, namespace)
        for action in self._actions:
            plain = type(action) is argparse._StoreAction  # not append, count, ...
            if plain and action.nargs is None and action.type is not None and action.option_strings:
                value = getattr(ns, action.dest, None)
                if isinstance(value, list) and not value and action.default != []:
                    self.error(f"argument {'/'.join(action.option_strings)}: expected one value")
        return ns, extra


def grid_knots(text: str) -> int:
    """An argparse type: 0 (off) or a knot count >= 2 (at most 65,536)."""
    value = integer(low=0, high=65536)(text)
    if value == 1:
        raise _fail("0 (off) or a knot count >= 2", text)
    return value
