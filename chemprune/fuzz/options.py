"""Fuzz surface of the command line: odd values of every numeric option of ``chemprune``."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable

import numpy as np

from chemprune.fuzz.oracle import Outcome

__all__ = ["OPTION_CHECKS", "argv_case", "argv_cases"]


def argv_case(
    argv: list[str],
    checks: dict[str, Callable[[object], bool]],
    build_parser: Callable[[], argparse.ArgumentParser],
) -> Outcome:
    """Parse ``argv`` with a fresh parser from ``build_parser`` (chemprune's,
    :func:`chemprune.cli.build_parser`, handed in by the caller: the CLI sits above this
    package; nothing runs): a usage error (exit 2, one message line), or values that satisfy
    ``checks`` (option dest -> predicate)."""
    parser = build_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        lines = [ln for ln in err.getvalue().splitlines() if ln and not ln.startswith(" ")]
        if exit_.code == 2 and lines and lines[-1].startswith("chemprune"):
            return Outcome("refused", lines[-1][:200])
        return Outcome("crash", f"exit {exit_.code}: {err.getvalue()[-200:]!r}")
    except Exception as e:  # noqa: BLE001
        return Outcome("crash", f"{type(e).__name__}: {e}")
    for dest, ok in checks.items():
        value = getattr(args, dest, None)
        try:
            good = value is None or bool(ok(value))
        except Exception:  # noqa: BLE001 - e.g. a list where a number belongs
            good = False
        if not good:
            return Outcome("wrong", f"accepted --{dest.replace('_', '-')} {value!r}")
    return Outcome("ok")


# option -> what an accepted value must satisfy
def _pos_int(v):
    return isinstance(v, int) and v >= 1


def _nonneg(v):
    return np.isfinite(v) and v >= 0


def _pos(v):
    return np.isfinite(v) and v > 0


def _frac_open(v):
    return np.isfinite(v) and 0 < v < 1


def _seed(v):
    return isinstance(v, int) and 0 <= v < 2**32


OPTION_CHECKS: dict[str, list[tuple[str, str, Callable[[object], bool]]]] = {
    "train --out r": [
        ("--epochs", "epochs", _pos_int), ("--batch-size", "batch_size", _pos_int),
        ("--lr", "lr", _pos), ("--min-lr", "min_lr", _nonneg),
        ("--lr-factor", "lr_factor", _frac_open), ("--lr-patience", "lr_patience", _nonneg),
        ("--max-minutes", "max_minutes", _pos), ("--max-grad-norm", "max_grad_norm", _nonneg),
        ("--checkpoint-every", "checkpoint_every", _nonneg), ("--seed", "seed", _seed),
        ("--subset", "subset", _pos_int), ("--hidden", "hidden", _pos_int),
        ("--cutoff", "cutoff", _pos), ("--threads", "threads", _pos_int),
        ("--momentum", "momentum", lambda v: np.isfinite(v) and 0 <= v < 1),
    ],
    "evaluate --model m.pt": [
        ("--limit", "limit", _pos_int), ("--batch-size", "batch_size", _pos_int),
    ],
    "predict --model m.pt": [("--batch-size", "batch_size", _pos_int), ("--seed", "seed", _seed)],
    "prune --model m.pt --method magnitude --out o.pt": [
        ("--sparsity", "sparsity", lambda v: np.isfinite(v) and 0 <= v < 1),
        ("--finetune-minutes", "finetune_minutes", _nonneg),
        ("--finetune-steps", "finetune_steps", _pos_int), ("--lr", "lr", _pos),
        ("--min-lr", "min_lr", _nonneg),
        ("--ema", "ema", lambda v: np.isfinite(v) and 0 <= v < 1),
    ],
    "demo": [
        ("--time-molecules", "time_molecules", _pos_int), ("--threads", "threads", _pos_int),
    ],
}  # fmt: skip


def argv_cases():
    """(argv, checks) pairs: one numeric option of one command with an odd value."""
    from hypothesis import strategies as st

    value = st.one_of(
        st.integers(-(2**40), 2**40).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["0", "-0", "1e400", "-1e-9", "nan", "inf", "", " 3", "0x10", "1_0"]),
        st.text(max_size=6),
    )
    entry = st.sampled_from([(cmd, o) for cmd, opts in OPTION_CHECKS.items() for o in opts])
    return st.tuples(entry, value).map(
        lambda t: ([*t[0][0].split(), f"{t[0][1][0]}={t[1]}"], {t[0][1][1]: t[0][1][2]})
    )
