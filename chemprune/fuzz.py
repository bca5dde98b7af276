"""Fuzz oracles for chemprune's input surfaces: run one generated case, judge its outcome.

Each surface function takes one case (a SMILES text, the bytes of a structure file or of a model
file, a command line) and returns an :class:`Outcome`:

``ok``          the input was used, and the result passed the surface's checks;
``refused``     a clean error: one of the surface's error types, a one-line message;
``crash``       any other exception (what a user would see as a traceback);
``wrong``       accepted, but the result is not what the input says (a silently dropped
                character, a geometry the models cannot be trusted on, weights that differ from
                the file's);
``hang``        not done within the time limit;
``damaged``     an input file changed.

Used by ``tests/test_fuzz.py`` (a fast slice in the default run, >= 10,000 cases per surface
with ``-m slow``) and ``benchmarks/fuzz_report.py`` (the report).
"""

from __future__ import annotations

import contextlib
import io
import signal
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Outcome",
    "KINDS",
    "time_limit",
    "smiles_case",
    "xyz_case",
    "model_case",
    "reaction_case",
    "argv_case",
    "SURFACES",
    "surface",
]

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


def _judge(run: Callable[[], Outcome], clean: tuple[type[BaseException], ...], limit: float):
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


# ---------------------------------------------------------------------- SMILES
def smiles_case(text: str, *, limit: float = 60.0) -> Outcome:
    """``smiles_to_structure(text)``: refused, or a structure whose atoms are exactly the
    parsed molecule's (with hydrogens) in a geometry that passes the sanity checks."""
    from chemprune.chem.sanity import StructureError, check_geometry
    from chemprune.chem.structures import smiles_to_structure

    def run() -> Outcome:
        s = smiles_to_structure(text, max_attempts=1)
        expected = _elements(s.name, hydrogens=True)
        got = Counter(int(z) for z in s.z)
        if expected is not None and got != expected:
            return Outcome("wrong", f"{text!r}: atoms {dict(got)} != parsed {dict(expected)}")
        if s.name != text.strip():
            return Outcome("wrong", f"{text!r} predicted as {s.name!r}")
        try:
            check_geometry(s.z, s.pos, s.name)
        except StructureError as err:  # accepted, but a geometry the checks refuse
            return Outcome("wrong", f"accepted a geometry the checks refuse: {err}")
        return Outcome("ok")

    return _judge(run, (StructureError,), limit)


def _elements(smiles: str, *, hydrogens: bool) -> Counter | None:
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


# ---------------------------------------------------------------------- structure files
def xyz_case(content: bytes, *, suffix: str = ".xyz", limit: float = 20.0) -> Outcome:
    """``read_structure_file`` on a file holding ``content``: refused, or frames that pass the
    geometry checks; the file is unchanged either way."""
    from chemprune.chem.sanity import StructureError, check_geometry
    from chemprune.chem.structures import read_structure_file

    with tempfile.TemporaryDirectory(prefix="fuzz_xyz_") as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(content)

        def run() -> Outcome:
            frames = read_structure_file(path)
            for f in frames:
                try:
                    check_geometry(f.z, f.pos, f.name)
                except StructureError as err:
                    return Outcome("wrong", f"accepted a frame the checks refuse: {err}")
            return Outcome("ok")

        out = _judge(run, (StructureError,), limit)
        if path.read_bytes() != content:
            return Outcome("damaged", "the structure file changed")
    return out


# ---------------------------------------------------------------------- model files
def model_case(content: bytes, reference: dict, *, limit: float = 20.0) -> Outcome:
    """``load_model`` on ``content`` (a mutated copy of a checkpoint whose state_dict is
    ``reference``): refused, or a model whose weights are exactly the reference's."""
    import torch

    from chemprune.checkpoint import CheckpointError, load_model

    with tempfile.TemporaryDirectory(prefix="fuzz_model_") as tmp:
        path = Path(tmp) / "model.pt"
        path.write_bytes(content)

        def run() -> Outcome:
            model, _ = load_model(path)
            state = model.state_dict()
            if set(state) != set(reference):
                return Outcome("wrong", "loaded other tensors than the checkpoint's")
            for k, v in reference.items():
                if not torch.equal(state[k], v):
                    return Outcome("wrong", f"loaded with a changed tensor {k}")
            return Outcome("ok")

        out = _judge(run, (CheckpointError, FileNotFoundError), limit)
        if path.read_bytes() != content:
            return Outcome("damaged", "the model file changed")
    return out


# ---------------------------------------------------------------------- reaction inputs
def reaction_case(text: str, *, limit: float = 20.0) -> Outcome:
    """``reaction_nmt.predict.prepare_input(text)``: refused, or a source line whose molecules
    hold exactly the atoms of an independent parse of the input (nothing silently dropped)."""
    from reaction_nmt.predict import InvalidInput, prepare_input
    from reaction_nmt.tokenize import detokenize

    def run() -> Outcome:
        source = detokenize(prepare_input(text, mode="mixed"))
        want = _elements(text.strip().replace(">", "."), hydrogens=False)
        got = _elements(source, hydrogens=False)
        if want is None or got is None or want != got:
            return Outcome("wrong", f"{text!r} became {source!r}")
        return Outcome("ok")

    return _judge(run, (InvalidInput,), limit)


# ---------------------------------------------------------------------- command lines
def argv_case(argv: list[str], checks: dict[str, Callable[[object], bool]]) -> Outcome:
    """Parse ``argv`` with chemprune's parser (nothing runs): a usage error (exit 2, one
    message line), or values that satisfy ``checks`` (option dest -> predicate)."""
    from chemprune.cli import build_parser

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


# ---------------------------------------------------------------------- generators
# (hypothesis strategies; hypothesis and hypothesis-rdkit come with the "test" extra)
LOOKALIKES = "\u0421\u0441\u041e\u043e\u039d\u00a0\u200b\u2212\uff23\u0410"
SEEDS = ("CCO", "c1ccccc1", "C.C", "CC(=O)O", "C#N", "O=C=O", "C1CC1", "[NH4+]", "F", "OCC.O")
_ATOMS = ("C", "H", "O", "N", "F", "Cl", "X", "Xx", "", "6", "c")


def smiles_texts():
    """SMILES-like texts: drug-like molecules (hypothesis-rdkit), random strings over the SMILES
    alphabet with look-alikes and whitespace, and known molecules with one character changed."""
    from hypothesis import strategies as st
    from hypothesis_rdkit import mols

    from chemprune.chem.sanity import SMILES_CHARACTERS

    alphabet = "".join(sorted(SMILES_CHARACTERS)) + LOOKALIKES + " \t\n"
    from rdkit import Chem

    def edit(seed_pos_char):
        seed, pos, char = seed_pos_char
        pos = pos % (len(seed) + 1)
        return seed[:pos] + char + seed[pos:]

    return st.one_of(
        mols(n_connected_components=st.integers(1, 2), max_rotatable_bonds=st.just(4)).map(
            Chem.MolToSmiles
        ),
        st.text(alphabet=alphabet, max_size=30),
        st.tuples(st.sampled_from(SEEDS), st.integers(0, 20), st.sampled_from(alphabet)).map(edit),
        st.sampled_from(SEEDS),
    )


def reaction_texts():
    """Reaction inputs: the SMILES texts of :func:`smiles_texts` joined by '.' or '>'."""
    from hypothesis import strategies as st

    return st.tuples(
        smiles_texts(), st.sampled_from([".", ">", "", " ", ">>"]), smiles_texts()
    ).map(lambda t: t[0] + t[1] + t[2])


def xyz_contents():
    """XYZ-like files: count lines (right, wrong, negative, huge, text), comments, atom lines
    with odd elements and coordinates (NaN, inf, 1e39, coincident), blank lines, stray bytes."""
    from hypothesis import strategies as st

    coord = st.one_of(
        st.floats(-6, 6, allow_nan=False),
        st.sampled_from([0.0, 1e-7, 1e39, -1e300, float("nan"), float("inf")]),
    )
    atom = st.tuples(st.sampled_from(_ATOMS), coord, coord, coord).map(
        lambda a: f"{a[0]} {a[1]!r} {a[2]!r} {a[3]!r}".strip()
    )

    def frame(parts):
        count, comment, atoms, blank = parts
        n = len(atoms) if count == "right" else count
        lines = [str(n), comment, *atoms] + ([""] if blank else [])
        return "\n".join(lines) + "\n"

    count = st.one_of(st.just("right"), st.integers(-3, 40), st.just(10**12), st.just("x"))
    frames = st.lists(
        st.tuples(count, st.text(max_size=10).filter(lambda t: "\n" not in t and "\r" not in t),
                  st.lists(atom, max_size=8), st.booleans()),
        min_size=0, max_size=3,
    )  # fmt: skip
    junk = st.binary(max_size=8)
    hostile = st.tuples(frames, junk, st.booleans()).map(
        lambda t: (
            "".join(frame(f) for f in t[0]).encode("utf-8", "surrogatepass")
            + (t[1] if t[2] else b"")
        )
    )
    shift = st.floats(-50, 50, allow_nan=False)
    water = st.tuples(shift, shift, st.floats(0.2, 3.0)).map(
        lambda t: (
            f"3\nwater\nO {t[0]} {t[1]} 0\nH {t[0] + 0.96 * t[2] / 3} {t[1]} 0\n"
            f"H {t[0]} {t[1] + 0.96 * t[2] / 3} 0\n"
        ).encode()
    )  # O-H from 0.064 to 0.96 A: refused below the 0.5 A limit, used above
    return st.one_of(hostile, water)


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
    ],
    "demo": [("--minutes", "minutes", _pos), ("--sparsity", "sparsity", _frac_open)],
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


# ---------------------------------------------------------------------- surfaces
SURFACES = ("smiles", "xyz", "model", "argv", "reaction")


def surface(name: str, *, model: tuple[bytes, dict] | None = None):
    """``(strategy, judge)`` of one surface: hypothesis draws a case from ``strategy``,
    ``judge(case)`` returns its :class:`Outcome`. ``model`` is ``(checkpoint bytes, its
    state_dict)`` for the ``model`` surface."""
    if name == "model":
        if model is None:
            raise ValueError("the model surface needs model=(checkpoint bytes, state_dict)")
        content, reference = model
        return mutations(len(content)), lambda ops: model_case(mutate(content, ops), reference)
    table = {
        "smiles": (smiles_texts, smiles_case),
        "xyz": (xyz_contents, xyz_case),
        "argv": (argv_cases, lambda case: argv_case(*case)),
        "reaction": (reaction_texts, reaction_case),
    }
    if name not in table:
        raise ValueError(f"unknown fuzz surface {name!r}; choose from {', '.join(SURFACES)}")
    strategy, judge = table[name]
    return strategy(), judge
