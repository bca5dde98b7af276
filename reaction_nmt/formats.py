"""Readers for the USPTO file formats and user CSV files (plain or gzip).

Each reader yields :class:`Record` objects, one per input line, in the forward direction
(reactants, reagents, products). A line that does not have the format's shape becomes a record
with ``error`` set, so the caller counts it instead of crashing or keeping it.

Formats:

* ``mapped``: ``REACTANTS>REAGENTS>PRODUCTS [EDITS]`` per line, atom-mapped, as in
  USPTO-MIT / USPTO-15k (Jin et al. 2017; the reagent field is usually empty).
* ``liu-smi``: ``PRODUCT >> REACTANTS`` per line (Liu split of USPTO-50k, Karpov et al.).
* ``liu-tokenized``: ``src-*.txt`` (``<RX_n>`` class token + tokenised product) with the
  matching ``tgt-*.txt`` (tokenised reactants) of the Liu split (retrosynthesis direction; read
  tgt -> src for forward prediction).
* ``csv``: a CSV with a header and a reaction-SMILES column (or a reactants and a product column);
  tab-separated when the file is named ``*.tsv`` or ``*.tab`` (plain or gzipped).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FORMATS",
    "Record",
    "DataFormatError",
    "csv_splits",
    "open_text",
    "read_lines",
    "read_records",
    "split_files",
]

FORMATS = ("mapped", "liu-smi", "liu-tokenized", "csv")
SPLITS = ("train", "valid", "test")


class DataFormatError(ValueError):
    """An input file is missing or does not have the expected layout; names the file."""


@dataclass(frozen=True)
class Record:
    """One reaction read from a file; ``where`` is ``file:line`` for messages."""

    where: str
    reactants: str = ""
    reagents: str = ""
    products: str = ""
    edits: str = ""
    error: str | None = None


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, gunzipping ``*.gz`` transparently."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _unreadable(path: Path, err: BaseException) -> DataFormatError:
    if isinstance(err, UnicodeDecodeError):
        return DataFormatError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        )
    if isinstance(err, EOFError):
        return DataFormatError(f"{path}: truncated (the compressed stream ends early)")
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DataFormatError(f"{path}: unreadable: {text}")


def read_lines(path: Path | str) -> list[str]:
    """Every line of a text file (plain or ``.gz``), newlines kept; a missing, undecodable or
    corrupt file is a :class:`DataFormatError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(f"{path} is a directory, not a text file")
    try:
        with open_text(path) as fh:
            return fh.readlines()
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as err:
        raise _unreadable(path, err) from None


def _guarded(path: Path, records: Iterator[Record]) -> Iterator[Record]:
    """``records``, with decoding and decompression failures turned into one-line errors."""
    try:
        yield from records
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError, csv.Error) as err:
        raise _unreadable(path, err) from None


def _first_existing(folder: Path, names: list[str]) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def split_files(fmt: str, folder: Path) -> dict[str, Path]:
    """The train/valid/test files of a data folder in a known layout.

    ``mapped``: ``{split}.txt``; ``liu-smi``: ``retrosynthesis-{split}.smi``; ``liu-tokenized``:
    ``src-{split}.txt`` (the ``tgt-`` file is found beside it); ``csv``: ``{split}.csv``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder} is not a folder")
    names = {
        "mapped": lambda s: [f"{s}.txt", f"{s}.rsmi"],
        "liu-smi": lambda s: [f"retrosynthesis-{s}.smi", f"{s}.smi"],
        "liu-tokenized": lambda s: [f"src-{s}.txt"],
        "csv": lambda s: [f"{s}.csv"],
    }[fmt]
    found = {s: p for s in SPLITS if (p := _first_existing(folder, names(s))) is not None}
    if not found:
        raise DataFormatError(f"{folder} has no {fmt} files (looked for {names('train')[0]} ...)")
    return found


def _split_reaction(rxn: str, where: str, edits: str = "") -> Record:
    parts = rxn.split(">")
    if len(parts) != 3:
        return Record(where, error=f"not a reaction SMILES (need 2 '>'): {rxn[:80]!r}")
    reactants, reagents, products = (p.strip() for p in parts)
    if not reactants or not products:
        return Record(where, error=f"reaction without reactants or products: {rxn[:80]!r}")
    return Record(where, reactants, reagents, products, edits)


def _read_mapped(path: Path) -> Iterator[Record]:
    with open_text(path) as fh:
        for i, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            yield _split_reaction(fields[0], f"{path.name}:{i}", " ".join(fields[1:]))


def _read_liu_smi(path: Path) -> Iterator[Record]:
    with open_text(path) as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{i}"
            if line.count(">>") != 1:
                yield Record(where, error=f"expected 'PRODUCT >> REACTANTS': {line.strip()[:80]!r}")
                continue
            product, reactants = (p.strip() for p in line.split(">>"))
            if not product or not reactants:
                yield Record(where, error=f"empty product or reactants: {line.strip()[:80]!r}")
                continue
            yield Record(where, reactants=reactants, products=product)


def _read_liu_tokenized(path: Path) -> Iterator[Record]:
    tgt_path = path.with_name(path.name.replace("src-", "tgt-", 1))
    if tgt_path == path or not tgt_path.is_file():
        raise DataFormatError(f"{path}: the matching tgt- file {tgt_path.name} does not exist")
    with open_text(path) as src, open_text(tgt_path) as tgt:
        for i, (s, t) in enumerate(zip(src, tgt, strict=False), 1):
            where = f"{path.name}:{i}"
            tokens = s.split()
            if tokens and tokens[0].startswith("<RX_"):
                tokens = tokens[1:]
            if not tokens or not t.split():
                yield Record(where, error="empty product or reactants")
                continue
            yield Record(where, reactants="".join(t.split()), products="".join(tokens))
        if src.readline() or tgt.readline():
            raise DataFormatError(f"{path} and {tgt_path.name} have different numbers of lines")


def csv_delimiter(path: Path) -> str:
    """Tab for ``*.tsv`` / ``*.tab`` (plain or gzipped), comma otherwise."""
    name = Path(path).name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab")) else ","


def _csv_reaction(rxn: str, where: str) -> Record:
    """A reaction cell: one reaction SMILES, optionally followed by a CXSMILES extension
    (``|f:...|``, fragment grouping, not needed here); any other space inside is refused, since
    what follows it would otherwise be silently dropped."""
    rxn = rxn.strip()
    head, _, rest = rxn.partition(" ")
    rest = rest.strip()
    if rest and not (rest.startswith("|") and rest.endswith("|") and not any(
        ch.isspace() for ch in rest
    )):  # fmt: skip
        return Record(where, error=f"space inside the reaction SMILES: {rxn[:80]!r}")
    if any(ch.isspace() for ch in head):
        return Record(where, error=f"whitespace inside the reaction SMILES: {rxn[:80]!r}")
    return _split_reaction(head, where)


REACTION_COLUMNS = ("rxn_smiles", "reaction_smiles", "reaction", "rxn", "smiles")


def _read_csv(
    path: Path,
    *,
    reaction_column: str | None = None,
    reactants_column: str | None = None,
    product_column: str | None = None,
    split_column: str | None = None,
    split: str | None = None,
) -> Iterator[Record]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=csv_delimiter(path))
        header = reader.fieldnames or []
        if reactants_column or product_column:
            missing = [c for c in (reactants_column, product_column) if c not in header]
            if missing or not (reactants_column and product_column):
                raise DataFormatError(
                    f"{path}: needs both --reactants-column and --product-column present in the "
                    f"header; missing {missing or 'one of them'} (header: {header})"
                )
        else:
            if reaction_column is None:
                lower = {h.lower(): h for h in header}
                reaction_column = next((lower[c] for c in REACTION_COLUMNS if c in lower), None)
            if reaction_column not in header:
                raise DataFormatError(
                    f"{path}: no reaction-SMILES column (give --reaction-column; header: {header})"
                )
        if split_column is not None and split_column not in header:
            raise DataFormatError(f"{path}: no split column {split_column!r} (header: {header})")
        for i, row in enumerate(reader, 2):
            if split_column is not None and split is not None and row[split_column] != split:
                continue
            where = f"{path.name}:{i}"
            if reactants_column:
                reactants = (row[reactants_column] or "").strip()
                product = (row[product_column] or "").strip()
                if not reactants or not product:
                    yield Record(where, error="empty reactants or product")
                    continue
                if any(ch.isspace() for ch in reactants + product):
                    yield Record(where, error=f"whitespace inside a SMILES: {reactants[:40]!r} "
                                 f"/ {product[:40]!r}")  # fmt: skip
                    continue
                yield Record(where, reactants=reactants, products=product)
            else:
                yield _csv_reaction(row[reaction_column] or "", where)


def csv_splits(path: Path, split_column: str) -> list[str]:
    """The standard split names (train/valid/test) that occur in a CSV's split column."""
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(f"{path} is a directory, not a csv file")
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh, delimiter=csv_delimiter(path))
            if split_column not in (reader.fieldnames or []):
                raise DataFormatError(f"{path}: no split column {split_column!r}")
            seen = {row[split_column] for row in reader}
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError, csv.Error) as err:
        raise _unreadable(path, err) from None
    return [s for s in SPLITS if s in seen]


def read_records(fmt: str, path: Path, **csv_options) -> Iterator[Record]:
    """Records of one file in format ``fmt`` (see the module docstring)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if path.is_dir():
        raise DataFormatError(f"{path} is a directory, not a {fmt} file")
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist")
    if fmt == "mapped":
        return _guarded(path, _read_mapped(path))
    if fmt == "liu-smi":
        return _guarded(path, _read_liu_smi(path))
    if fmt == "liu-tokenized":
        return _guarded(path, _read_liu_tokenized(path))
    return _guarded(path, _read_csv(path, **csv_options))
