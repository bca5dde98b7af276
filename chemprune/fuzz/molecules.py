"""Fuzz surfaces of the molecular side: SMILES texts, structure files, model files."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from chemprune.fuzz.oracle import Outcome, elements, judge

__all__ = [
    "smiles_case",
    "xyz_case",
    "model_case",
    "split_case",
    "smiles_texts",
    "xyz_contents",
    "split_records",
]


# ---------------------------------------------------------------------- SMILES
def smiles_case(text: str, *, limit: float = 60.0) -> Outcome:
    """``smiles_to_structure(text)``: refused, or a structure whose atoms are exactly the
    parsed molecule's (with hydrogens), neutral overall, in a geometry that passes the sanity
    checks."""
    from chemprune.molecules.chem.sanity import StructureError, check_geometry
    from chemprune.molecules.chem.structures import smiles_to_structure

    def run() -> Outcome:
        s = smiles_to_structure(text, max_attempts=1)
        expected = elements(s.name, hydrogens=True)
        got = Counter(int(z) for z in s.z)
        if expected is not None and got != expected:
            return Outcome("wrong", f"{text!r}: atoms {dict(got)} != parsed {dict(expected)}")
        if s.name != text.strip():
            return Outcome("wrong", f"{text!r} predicted as {s.name!r}")
        charge = net_charge(s.name)
        if charge:
            return Outcome("wrong", f"{text!r} accepted with net charge {charge:+d}")
        try:
            check_geometry(s.z, s.pos, s.name)
        except StructureError as err:  # accepted, but a geometry the checks refuse
            return Outcome("wrong", f"accepted a geometry the checks refuse: {err}")
        return Outcome("ok")

    return judge(run, (StructureError,), limit)


# ---------------------------------------------------------------------- structure files
def _through_fifo(fifo: Path, content: bytes, read):
    """``read(fifo)`` while a thread writes ``content`` into the FIFO (a pipe: stat says size
    0, it can be read once); the writer is released whatever the reader does."""
    import os
    import threading

    os.mkfifo(fifo)

    def write():
        try:
            with open(fifo, "wb") as fh:
                fh.write(content)
        except OSError:  # the reader stopped early
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        return read(fifo)
    finally:
        if writer.is_alive():  # the reader never opened it: open it to let the writer finish
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        writer.join(5)


def xyz_case(
    content: bytes, *, suffix: str = ".xyz", limit: float = 20.0, pipe: bool = True
) -> Outcome:
    """``read_structure_file`` on a file holding ``content``: refused, or frames that pass the
    geometry checks; the file is unchanged either way. With ``pipe``, the same bytes through a
    FIFO of the same name must give the same outcome (the same frames, or a refusal)."""
    from chemprune.molecules.chem.sanity import StructureError, check_geometry
    from chemprune.molecules.chem.structures import read_structure_file

    with tempfile.TemporaryDirectory(prefix="fuzz_xyz_") as tmp:
        path = Path(tmp) / f"case{suffix}"
        path.write_bytes(content)
        got: dict[str, list] = {}

        def run(read, key: str) -> Outcome:
            frames = got[key] = read()
            for f in frames:
                try:
                    check_geometry(f.z, f.pos, f.name)
                except StructureError as err:
                    return Outcome("wrong", f"accepted a frame the checks refuse: {err}")
            return Outcome("ok")

        out = judge(
            lambda: run(lambda: read_structure_file(path), "file"), (StructureError,), limit
        )
        if path.read_bytes() != content:
            return Outcome("damaged", "the structure file changed")
        if not pipe or out.kind not in ("ok", "refused"):
            return out
        (Path(tmp) / "pipe").mkdir()
        fifo = Path(tmp) / "pipe" / path.name

        def via_pipe():
            return _through_fifo(fifo, content, read_structure_file)

        piped = judge(lambda: run(via_pipe, "pipe"), (StructureError,), limit)
        if piped.kind != out.kind:
            return Outcome(
                "wrong", f"as a file {out.kind} ({out.detail}), through a pipe {piped.kind} "
                f"({piped.detail})"
            )  # fmt: skip
        if out.kind == "ok":
            a, b = got["file"], got["pipe"]
            same = len(a) == len(b) and all(
                (x.z == y.z).all() and (x.pos == y.pos).all() for x, y in zip(a, b, strict=True)
            )
            if not same:
                return Outcome("wrong", "other frames through a pipe than from the file")
    return out


# ---------------------------------------------------------------------- model files
def model_case(content: bytes, reference: dict, *, limit: float = 20.0) -> Outcome:
    """``load_model`` on ``content`` (a mutated copy of a checkpoint whose state_dict is
    ``reference``): refused, or a model whose weights are exactly the reference's."""
    import torch

    from chemprune.common.atomic import CheckpointError
    from chemprune.molecules.checkpoint import load_model

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

        out = judge(run, (CheckpointError, FileNotFoundError), limit)
        if path.read_bytes() != content:
            return Outcome("damaged", "the model file changed")
    return out


# ---------------------------------------------------------------------- split records
#: molecules in the data set a split case is checked against
SPLIT_DATA_SIZE = 240
_INTEGER_DTYPES = ("int32", "int64", "uint8", "int16")


def _fuzz_checkpoint() -> dict:
    """A small SchNet checkpoint (built once per process) whose split the cases replace."""
    global _CHECKPOINT
    if _CHECKPOINT is None:
        import torch

        from chemprune.molecules.checkpoint import model_checkpoint
        from chemprune.molecules.models.schnet import SchNet

        torch.manual_seed(0)
        m = SchNet(hidden_channels=4, filter_channels=4, num_interactions=1, num_gaussians=4)
        target = {"name": "gap", "unit": "eV", "readout": "mean", "description": "gap"}
        _CHECKPOINT = model_checkpoint(m, target=target)
    return _CHECKPOINT


_CHECKPOINT: dict | None = None


def _split_record(case: dict) -> dict:
    import torch

    record: dict = {}
    if case["kind"] is not None:
        record["kind"] = case["kind"]
    for part in ("train", "val", "test"):
        if case[part] is None:
            continue
        dtype, ids = case[part]
        if dtype == "list":
            record[part] = list(ids)
        else:  # (negative ids wrap around in uint8, as a careless writer's would)
            record[part] = torch.tensor(ids, dtype=torch.int64).to(getattr(torch, dtype))
    if case["seed"] != "absent":
        record["seed"] = case["seed"]
    if case["sizes"] == "auto":
        record["sizes"] = [len(case[p][1]) if case[p] else 0 for p in ("train", "val", "test")]
    elif case["sizes"] is not None:
        record["sizes"] = list(case["sizes"])
    return record


def split_case(case: dict, *, limit: float = 20.0) -> Outcome:
    """A checkpoint whose ``data.split`` is ``case``'s record (:func:`split_records`), with or
    without its digest, through ``load_checkpoint`` and
    :func:`chemprune.molecules.checkpoint.checkpoint_split` (240 molecules): refused in one line, or ids
    exactly the record's (integers, non-empty, in range, none repeated or shared). A file
    without a digest must be accepted with exactly one warning saying so over two loads; a
    file with one, without."""
    import contextlib
    import io

    import torch

    from chemprune.common.atomic import CheckpointError, atomic_save
    from chemprune.molecules.checkpoint import checkpoint_split, load_checkpoint

    record = _split_record(case)
    ckpt = {**_fuzz_checkpoint(), "data": {"source": "fuzz", "split": record}}
    if not case["digest"]:
        ckpt.pop("integrity")
    with tempfile.TemporaryDirectory(prefix="fuzz_split_") as tmp:
        path = Path(tmp) / "model.pt"
        atomic_save(ckpt, path)
        err = io.StringIO()

        def run() -> Outcome:
            with contextlib.redirect_stderr(err):
                loaded = load_checkpoint(path)
                load_checkpoint(path)
            warned = err.getvalue().count("carries no digest")
            if warned != (0 if case["digest"] else 1):
                return Outcome("wrong", f"{warned} digest warnings (digest: {case['digest']})")
            parts = checkpoint_split(loaded, path, SPLIT_DATA_SIZE)
            if parts is None:
                return Outcome("ok")
            seen: set[int] = set()
            for name, ids in parts.items():
                given = record[name]
                if not isinstance(given, torch.Tensor) or given.dtype not in [
                    getattr(torch, d) for d in _INTEGER_DTYPES
                ]:
                    return Outcome("wrong", f"accepted {name} given as {type(given).__name__}")
                if ids.dtype.kind != "i" or ids.tolist() != given.tolist():
                    return Outcome("wrong", f"{name} read as other ids than the file's")
                if not len(ids) or ids.min() < 0 or ids.max() >= SPLIT_DATA_SIZE:
                    return Outcome("wrong", f"accepted {name} ids {ids.tolist()}")
                if len(set(ids.tolist())) != len(ids) or seen & set(ids.tolist()):
                    return Outcome("wrong", f"accepted repeated or shared ids in {name}")
                seen |= set(ids.tolist())
            return Outcome("ok")

        return judge(run, (CheckpointError,), limit)


def split_records():
    """Split records for :func:`split_case`: three disjoint parts (``train``/``val``/``test``)
    of distinct ids below 240 as integer tensors, of which up to two may be spoiled (missing,
    or ids from -3 to 300 as integer, float or bool tensors or as a list); a kind (none,
    explicit, unknown), a seed, sizes that match or not; with or without the file's digest."""
    from hypothesis import strategies as st

    ids = st.lists(st.integers(0, SPLIT_DATA_SIZE - 1), min_size=3, max_size=24, unique=True)
    integer = st.sampled_from(_INTEGER_DTYPES)
    dtype = st.sampled_from((*_INTEGER_DTYPES, "float32", "bool", "list"))
    odd = st.tuples(dtype, st.lists(st.integers(-3, 300), max_size=8))
    spoil = st.tuples(st.sampled_from(("train", "val", "test")), st.one_of(st.none(), odd))

    def record(t) -> dict:
        (pool, a, b, kinds, spoiled), rest = t[:5], t[5]
        a, b = sorted((1 + a % (len(pool) - 1), 1 + b % (len(pool) - 1)))
        b = max(b, a + 1) if a + 1 < len(pool) else b
        cut = {"train": pool[:a], "val": pool[a:b], "test": pool[b:]}
        case = {p: (k, cut[p]) for p, k in zip(("train", "val", "test"), kinds, strict=True)}
        for part, value in spoiled:  # a missing part or odd ids in place of the right ones
            case[part] = value
        return {**case, **rest}

    rest = st.fixed_dictionaries(
        {
            "kind": st.sampled_from((None, None, "explicit", "explicit", "seeded")),
            "seed": st.one_of(
                st.just(0), st.integers(-1, 5), st.sampled_from((True, 1.5, None, "absent"))
            ),
            "sizes": st.one_of(
                st.just("auto"),
                st.just("auto"),
                st.none(),
                st.lists(st.integers(-1, 9), max_size=4),
            ),
            "digest": st.booleans(),
        }
    )
    spoils = st.one_of(st.just([]), st.just([]), st.lists(spoil, min_size=1, max_size=2))
    return st.tuples(
        ids, st.integers(0, 99), st.integers(0, 99), st.tuples(integer, integer, integer), spoils,
        rest,
    ).map(record)  # fmt: skip


def net_charge(smiles: str) -> int:
    """The sum of the formal charges of an independent RDKit parse (0 if it does not parse)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    return 0 if mol is None else sum(a.GetFormalCharge() for a in mol.GetAtoms())


# ---------------------------------------------------------------------- generators
# (hypothesis strategies; hypothesis and hypothesis-rdkit come with the "test" extra)
LOOKALIKES = "\u0421\u0441\u041e\u043e\u039d\u00a0\u200b\u2212\uff23\u0410"
SEEDS = ("CCO", "c1ccccc1", "C.C", "CC(=O)O", "C#N", "O=C=O", "C1CC1", "[NH4+]", "F", "OCC.O",
         "C[N+](=O)[O-]")  # fmt: skip
_ATOMS = ("C", "H", "O", "N", "F", "Cl", "X", "Xx", "", "6", "c")


def smiles_texts():
    """SMILES-like texts: drug-like molecules (hypothesis-rdkit), random strings over the SMILES
    alphabet with look-alikes and whitespace, and known molecules with one character changed."""
    from hypothesis import strategies as st
    from hypothesis_rdkit import mols

    from chemprune.molecules.chem.sanity import SMILES_CHARACTERS

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


def xyz_contents():
    """XYZ-like files: count lines (right, wrong, negative, huge, text), comments, atom lines
    with odd elements and coordinates (NaN, inf, 1e39, coincident), blank lines, stray bytes,
    a UTF-8 byte-order mark in front."""
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
    bom = st.one_of(hostile, water).map(lambda b: b"\xef\xbb\xbf" + b)  # a UTF-8 byte-order mark
    return st.one_of(hostile, water, bom)
