"""What a fuzz case's outcome is, and the helpers every surface's oracle shares.

``ok``          the input was used, and the result passed the surface's checks;
``refused``     a clean error: one of the surface's error types, a one-line message;
``crash``       any other exception (what a user would see as a traceback);
``wrong``       accepted, but the result is not what the input says (a silently dropped
                character, a geometry the models cannot be trusted on, weights that differ from
                the file's);
``hang``        not done within the time limit;
``damaged``     an input file changed.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["KINDS", "Outcome", "time_limit", "judge", "elements", "mutations", "mutate"]

KINDS = ("ok", "refused", "crash", "wrong", "hang", "damaged")


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown outcome {self.kind!r}")


class _Timeout(BaseException):
    """Raised by :func:`time_limit` (a BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_Timeout` in the main thread after ``seconds`` (SIGALRM; POSIX)."""

    def fire(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def judge(run: Callable[[], Outcome], clean: tuple[type[BaseException], ...], limit: float):
    try:
        with time_limit(limit):
            return run()
    except _Timeout:
        return Outcome("hang", f"> {limit:g} s")
    except clean as err:
        text = str(err)
        if "\n" in text.strip():
            return Outcome("crash", f"multi-line message: {text[:200]!r}")
        return Outcome("refused", text[:200])
    except Exception as err:  # noqa: BLE001 - what the oracle exists to find
        return Outcome("crash", f"{type(err).__name__}: {str(err)[:200]}")


def elements(smiles: str, *, hydrogens: bool) -> Counter | None:
    """Element counts of an independent RDKit parse of each '.'-separated part (with implicit
    hydrogens made explicit, or heavy atoms only), or None if a part does not parse."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    counts: Counter = Counter()
    for part in (p for p in smiles.split(".") if p):
        mol = Chem.MolFromSmiles(part)
        if mol is None:
            return None
        mol = Chem.AddHs(mol) if hydrogens else mol
        counts.update(a.GetAtomicNum() for a in mol.GetAtoms())
    return counts


def mutations(size: int):
    """Byte mutations of a file of ``size`` bytes: (kind, position, value) triples applied by
    :func:`mutate`: bit flips, truncation, inserted bytes, zeroed runs."""
    from hypothesis import strategies as st

    op = st.tuples(
        st.sampled_from(("flip", "truncate", "insert", "zero")),
        st.integers(0, max(size - 1, 0)),
        st.integers(0, 255),
    )
    return st.lists(op, min_size=1, max_size=4)


def mutate(content: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(content)
    for kind, pos, value in ops:
        pos = min(pos, max(len(b) - 1, 0))
        if kind == "flip" and b:
            b[pos] ^= 1 << (value % 8)
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = bytes([value]) * (1 + value % 7)
        elif kind == "zero":
            b[pos : pos + 1 + value] = bytes(len(b[pos : pos + 1 + value]))
    return bytes(b)
