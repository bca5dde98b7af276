"""Fuzz surfaces of the reaction side: ``reaction-nmt predict``'s inputs, corpus files for
``prepare`` and reaction-model files."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import re
import tempfile
from pathlib import Path

from chemprune.fuzz.oracle import Outcome, elements, judge

__all__ = [
    "reaction_case",
    "reaction_texts",
    "corpus_case",
    "corpus_contents",
    "reaction_model_case",
    "reaction_model_reference",
]


def reaction_case(text: str, *, limit: float = 20.0) -> Outcome:
    """``reaction_nmt.predict.prepare_input(text)``: refused, or a source line whose molecules
    hold exactly the atoms of an independent parse of the input (nothing silently dropped)."""
    from reaction_nmt.predict import InvalidInput, prepare_input
    from reaction_nmt.tokenize import detokenize

    def run() -> Outcome:
        source = detokenize(prepare_input(text, mode="mixed"))
        want = elements(text.strip().replace(">", "."), hydrogens=False)
        got = elements(source, hydrogens=False)
        if want is None or got is None or want != got:
            return Outcome("wrong", f"{text!r} became {source!r}")
        return Outcome("ok")

    return judge(run, (InvalidInput,), limit)


def reaction_texts():
    """Reaction inputs: the SMILES texts of :func:`smiles_texts` joined by '.' or '>'."""
    from hypothesis import strategies as st

    from chemprune.fuzz.molecules import smiles_texts

    return st.tuples(
        smiles_texts(), st.sampled_from([".", ">", "", " ", ">>"]), smiles_texts()
    ).map(lambda t: t[0] + t[1] + t[2])


# ---------------------------------------------------------------------- corpus files
_DELIMITERS = {".csv": ",", ".tsv": "\t"}


def _rows(path_suffix: str, text: str, split: str) -> tuple[list[dict], str | None]:
    """An independent read of one split: its rows (numbered from 2 over all rows, as the reader
    names them) and the reaction column the reader should pick."""

    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[path_suffix])
    rows = [{**r, "_line": i} for i, r in enumerate(reader, 2) if r.get("split") == split]
    lower = {h.lower(): h for h in reader.fieldnames or []}
    names = ("rxn_smiles", "reaction_smiles", "reaction", "rxn", "smiles")
    return rows, next((lower[c] for c in names if c in lower), None)


def corpus_case(content: bytes, suffix: str = ".csv", *, limit: float = 30.0) -> Outcome:
    """``reaction-nmt prepare --format csv --split-column split`` on a file holding ``content``
    (``suffix`` ``.csv``, ``.tsv`` or either + ``.gz``): refused in one line (exit 2), or a
    corpus in which every row of every split is either written or listed as rejected, in order,
    each written source holding exactly the heavy atoms of the row's reactants and reagents and
    each target a non-empty part of its products; a reaction cell with a space inside is never
    accepted (the rest would be silently dropped). The input file is unchanged either way."""

    from reaction_nmt.cli import main
    from reaction_nmt.tokenize import detokenize

    with tempfile.TemporaryDirectory(prefix="fuzz_corpus_") as tmp:
        path = Path(tmp) / f"reactions{suffix}"
        path.write_bytes(content)
        out = Path(tmp) / "corpus"

        def run() -> Outcome:
            err = io.StringIO()
            argv = ["prepare", "--format", "csv", "--data", str(path), "--split-column", "split"]
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main([*argv, "--out", str(out)])
                except SystemExit as exit_:
                    code = exit_.code
            lines = err.getvalue().strip().splitlines()
            if code == 2 and len(lines) == 1:
                return Outcome("refused", lines[0][:200])
            if code != 0:
                return Outcome("crash", f"exit {code}: {err.getvalue()[-300:]!r}")
            raw = gzip.decompress(content) if suffix.endswith(".gz") else content
            text = raw.decode("utf-8")
            manifest = json.loads((out / "manifest.json").read_text())
            for split, stats in manifest["splits"].items():
                rows, column = _rows(suffix.removesuffix(".gz"), text, split)
                verdict = _check_split(split, stats, rows, column, out, detokenize)
                if verdict is not None:
                    return verdict
            return Outcome("ok")

        result = judge(run, (), limit)
        if path.read_bytes() != content:
            return Outcome("damaged", "the corpus file changed")
    return result


def _check_split(split, stats, rows, column, out, detokenize) -> Outcome | None:
    if stats["read"] != len(rows) or stats["read"] != stats["written"] + stats["rejected"]:
        return Outcome("wrong", f"{split}: {len(rows)} rows, manifest {stats}")
    rejected = (out / f"rejected-{split}.tsv").read_text().splitlines()[1:]
    if len(rejected) != stats["rejected"]:
        return Outcome("wrong", f"{split}: {len(rejected)} rejected lines, manifest {stats}")
    src = (out / f"src-{split}.txt").read_text().splitlines()
    tgt = (out / f"tgt-{split}.txt").read_text().splitlines()
    if len(src) != stats["written"] or len(tgt) != stats["written"]:
        return Outcome("wrong", f"{split}: {len(src)}/{len(tgt)} lines for {stats['written']}")
    # rows are written in order; the reader numbers them from line 2 like the CSV file
    rejected_at = [line.split("\t", 1)[0].rsplit(":", 1)[1] for line in rejected]
    k = 0
    written = [r for r in rows if str(r["_line"]) not in rejected_at]
    for row, s, t in zip(written, src, tgt, strict=False):
        cell = (row.get(column) or "").strip()
        head, _, extension = cell.partition(" ")
        if re.fullmatch(r"\|\S*\|", extension.strip()):
            cell = head  # a CXSMILES extension (|f:...|): fragment grouping, may be dropped
        if any(ch.isspace() for ch in cell):
            return Outcome("wrong", f"{split}: accepted {cell!r} with a space inside")
        parts = cell.split(">")
        if len(parts) != 3:
            return Outcome("wrong", f"{split}: accepted {cell!r}, not a reaction SMILES")
        reactants, reagents, products = parts
        want = elements(".".join(p for p in (reactants, reagents) if p), hydrogens=False)
        if elements(detokenize(s), hydrogens=False) != want:
            return Outcome("wrong", f"{split}: {cell!r} became source {detokenize(s)!r}")
        got, whole = elements(detokenize(t), hydrogens=False), elements(products, hydrogens=False)
        if not got or whole is None or any(got[z] > whole[z] for z in got):
            return Outcome("wrong", f"{split}: {cell!r} became target {detokenize(t)!r}")
        k += 1
    return None if k == stats["written"] else Outcome("wrong", f"{split}: rows out of step")


def corpus_contents():
    """(bytes, suffix) of CSV/TSV-like corpora: reaction columns under the detected names or
    others, split values right and wrong, reaction cells with spaces, quotes, delimiters, extra
    '>' or none, cells from :func:`smiles_texts`, gzip or plain (or a .gz name on plain text),
    stray non-UTF-8 bytes."""

    from hypothesis import strategies as st

    from chemprune.fuzz.molecules import smiles_texts

    good = st.sampled_from(
        [
            "CC(=O)Cl.NCC>>CC(=O)NCC",
            "CCO.CC(=O)O>[H+]>CCOC(C)=O",
            "c1ccccc1Br.OB(O)c1ccccc1>>c1ccc(-c2ccccc2)cc1",
            "C=C.BrBr>>BrCCBr",
        ]
    )
    cell = st.one_of(
        good,
        st.tuples(
            smiles_texts(), st.sampled_from([">>", ">", ">O>", ">>>", " >>", ">> "]), smiles_texts()
        ).map(lambda t: t[0] + t[1] + t[2]),
        st.tuples(good, st.sampled_from([" O", " |f:0.1|", "\t", '"', ",", "\n", ""])).map(
            lambda t: t[0] + t[1]
        ),
    )
    split = st.sampled_from(["train", "valid", "test", "train", "TRAIN", "", "x"])
    header = st.sampled_from(
        [
            ("reaction", "split"),
            ("rxn_smiles", "split"),
            ("Reaction", "split"),
            ("smiles", "split"),
            ("foo", "split"),
            ("reaction",),
            ("reaction", "split", "reaction"),
            ("split", "reaction"),
        ]
    )
    suffix = st.sampled_from([".csv", ".tsv", ".csv.gz", ".tsv.gz"])

    def build(t):
        head, rows, sfx, gz, junk = t
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, delimiter="\t" if ".tsv" in sfx else ",", lineterminator="\n")
        writer.writerow(head)
        for rxn, sp in rows:
            writer.writerow([rxn if h.lower() != "split" else sp for h in head])
        data = buf.getvalue().encode("utf-8", "surrogatepass") + junk
        return (gzip.compress(data) if gz and sfx.endswith(".gz") else data), sfx

    rows = st.lists(st.tuples(cell, split), max_size=6)
    junk = st.one_of(st.just(b""), st.just(b""), st.binary(max_size=4))
    return st.tuples(header, rows, suffix, st.booleans(), junk).map(build)


# ---------------------------------------------------------------------- reaction-model files
def reaction_model_case(content: bytes, reference: dict, *, limit: float = 20.0) -> Outcome:
    """``reaction_nmt.compress.storage.load_model`` (what ``predict``, ``evaluate`` and
    ``compress`` load through) on ``content``, a mutated copy of a model file the project wrote
    (dense or sparse-int8) whose dense weights are ``reference`` (``part/key`` -> tensor):
    refused, or exactly those weights."""

    import torch

    from reaction_nmt.backend import BackendError
    from reaction_nmt.compress.errors import CompressError
    from reaction_nmt.compress.storage import load_model

    with tempfile.TemporaryDirectory(prefix="fuzz_rxn_model_") as tmp:
        path = Path(tmp) / "model.pt"
        path.write_bytes(content)

        def run() -> Outcome:
            ckpt = load_model(path)
            state = {f"{part}/{k}": v for part in ("model", "generator")
                     for k, v in (ckpt.get(part) or {}).items()}  # fmt: skip
            if set(state) != set(reference):
                return Outcome("wrong", "loaded other tensors than the file's")
            for k, v in reference.items():
                if not torch.equal(state[k], v):
                    return Outcome("wrong", f"loaded with a changed tensor {k}")
            return Outcome("ok")

        out = judge(run, (BackendError, CompressError), limit)
        if path.read_bytes() != content:
            return Outcome("damaged", "the model file changed")
    return out


def reaction_model_reference(path) -> tuple[bytes, dict]:
    """(bytes, dense weights) of a model file, for :func:`reaction_model_case`."""

    from reaction_nmt.compress.storage import load_model

    ckpt = load_model(Path(path))
    weights = {f"{part}/{k}": v.clone() for part in ("model", "generator")
               for k, v in (ckpt.get(part) or {}).items()}  # fmt: skip
    return Path(path).read_bytes(), weights
