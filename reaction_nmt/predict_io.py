"""Files in and out of ``reaction-nmt predict``: reactions from a text file or a CSV/TSV column,
answers as text, JSON lines or CSV, written atomically.

Pure helpers (no torch, no RDKit): the CLI reads the input rows with :func:`gather_rows`, turns
each into records with :func:`prediction_records` or :func:`error_record`, renders them with
:func:`render_jsonl` / :func:`render_csv` and writes them with :func:`write_output`.

Every row and record says where its reaction came from, so an answer can be joined back to the
input: ``source`` is the file as given (``<stdin>`` for ``-``) or ``<arguments>`` for reactions
given on the command line, and ``line`` is the 1-based line number in that file (a CSV's header
is line 1; a quoted field over several lines counts from its first line) or the reaction's
1-based position among the command-line arguments.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from chemprune.molecules.chem.inputs import (
    InputFileError,
    is_stdin,
    read_input_lines,
    read_input_text,
)
from chemprune.molecules.chem.sanity import DEFAULT_LIMITS

__all__ = [
    "ARGUMENTS",
    "FORMATS",
    "RECORD_FIELDS",
    "InputRow",
    "argument_rows",
    "error_record",
    "gather_rows",
    "is_table",
    "prediction_records",
    "read_input_rows",
    "read_table_rows",
    "read_text_rows",
    "render",
    "render_csv",
    "render_jsonl",
    "render_text",
    "write_output",
]

ARGUMENTS = "<arguments>"
"""The ``source`` of reactions given as command-line arguments."""

FORMATS = ("text", "jsonl", "csv")
"""The output formats of ``--format``."""

RECORD_FIELDS = (
    "source",
    "line",
    "input",
    "rank",
    "product",
    "valid",
    "score",
    "probability",
    "error",
)
"""The fields of a record, in the order of the CSV columns."""

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class InputRow:
    """One reaction to predict and where it came from.

    Attributes:
        source: the file as given (``<stdin>`` for ``-``), or :data:`ARGUMENTS`.
        line: the 1-based line number in the file, or the position among the arguments.
        text: the reaction as read (stripped).
        error: why the row cannot be used as read (a CSV row without the column's value);
            ``None`` for a row to predict.
    """

    source: str
    line: int
    text: str
    error: str | None = None

    def where(self) -> str:
        """``line 7 of reactions.txt`` or ``argument 2``, for messages."""
        if self.source == ARGUMENTS:
            return f"argument {self.line}"
        return f"line {self.line} of {self.source}"


def argument_rows(arguments: Iterable[str]) -> list[InputRow]:
    """The reactions given as command-line arguments, numbered from 1."""
    return [InputRow(ARGUMENTS, i, text.strip()) for i, text in enumerate(arguments, start=1)]


def read_text_rows(
    path: str | os.PathLike, *, stdin: BinaryIO | None = None, what: str = "reaction file"
) -> list[InputRow]:
    """The reactions of a text file, one per line, with the file's line numbers (1-based).

    ``-`` reads standard input (``stdin``, default ``sys.stdin.buffer``); pipes and FIFOs work.
    Blank lines and lines starting with ``#`` are skipped; UTF-8 with or without a byte-order
    mark. The size (``DEFAULT_LIMITS.max_file_bytes``) and line count (``max_molecules``) are
    limited.

    Raises:
        InputFileError: missing, a folder, empty, too large, not UTF-8, or no reaction in it.
    """
    lines, label = read_input_lines(
        path,
        what=what,
        max_bytes=DEFAULT_LIMITS.max_file_bytes,
        max_lines=DEFAULT_LIMITS.max_molecules,
        stdin=stdin,
    )
    return [InputRow(label, lineno, line) for lineno, line in lines]


def _delimiter(path: str | os.PathLike, header_line: str) -> str:
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    # another name (or standard input) with --column: a header with tabs and no comma is a TSV
    return "\t" if "\t" in header_line and "," not in header_line else ","


def read_table_rows(
    path: str | os.PathLike,
    column: str | None = None,
    *,
    delimiter: str | None = None,
    stdin: BinaryIO | None = None,
    what: str = "reaction table",
) -> list[InputRow]:
    """The reactions of one column of a CSV or TSV file with a header row.

    Args:
        path: the file, or ``-`` for standard input.
        column: the header name of the reactions' column; ``None`` takes the only column of a
            one-column file.
        delimiter: the field separator; ``None``: ``,`` for ``.csv``, a tab for ``.tsv``, and
            for other names a tab when the header line has tabs and no comma, else ``,``.
        stdin: the stream read for ``-``.
        what: what the file is, for messages.

    Returns:
        One row per data row, with the file's line numbers (the header is line 1). Blank lines
        are skipped; a row too short to have the column, or with the column empty, comes back
        with ``error`` set so it can still be reported and written.

    Raises:
        InputFileError: the file cannot be read (see :func:`read_text_rows`), has no header or
            no data row, is not valid CSV, or has no column ``column`` (the message lists the
            header's columns), or has several columns and ``column`` is ``None``.
    """
    text, label = read_input_text(
        path, what=what, max_bytes=DEFAULT_LIMITS.max_file_bytes, stdin=stdin
    )
    if delimiter is None:
        delimiter = _delimiter(path, text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[InputRow] = []
    header: list[str] | None = None
    index = 0
    previous = 0  # the last physical line read before the current row
    try:
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                index = _column_index(header, column, what, label)
                name = header[index]
                continue
            value = record[index].strip() if index < len(record) else ""
            error = None
            if index >= len(record):
                error = (
                    f"has {len(record)} field{'s' if len(record) != 1 else ''}, no column "
                    f"{name!r} (the header has {len(header)})"
                )
            elif not value:
                error = f"column {name!r} is empty"
            rows.append(InputRow(label, start, value, error))
            if len(rows) > DEFAULT_LIMITS.max_molecules:
                raise InputFileError(
                    f"{what} {label}: more than {DEFAULT_LIMITS.max_molecules:,} rows"
                )
    except csv.Error as err:
        raise InputFileError(f"{what} {label}: line {reader.line_num}: {err}") from None
    if header is None:
        raise InputFileError(f"{what} {label} contains only blank lines")
    if not rows:
        raise InputFileError(f"{what} {label} has a header but no rows")
    return rows


def _column_index(header: list[str], column: str | None, what: str, label: str) -> int:
    listed = ", ".join(repr(h) for h in header)
    if column is None:
        if len(header) == 1:
            return 0
        raise InputFileError(
            f"{what} {label} has {len(header)} columns ({listed}); choose one with --column"
        )
    if column not in header:
        raise InputFileError(f"{what} {label} has no column {column!r}; its columns: {listed}")
    return header.index(column)


def is_table(path: str | os.PathLike, column: str | None = None) -> bool:
    """Whether ``path`` is read as a CSV/TSV table: a ``.csv``/``.tsv`` name or a ``column``."""
    return column is not None or Path(os.fspath(path)).suffix.lower() in TABLE_SUFFIXES


def read_input_rows(
    path: str | os.PathLike, column: str | None = None, *, stdin: BinaryIO | None = None
) -> list[InputRow]:
    """The rows of an ``--input`` file: :func:`read_table_rows` when :func:`is_table`, else
    :func:`read_text_rows`."""
    if is_table(path, column):
        return read_table_rows(path, column, stdin=stdin)
    return read_text_rows(path, stdin=stdin)


def gather_rows(
    arguments: Sequence[str],
    path: str | os.PathLike | None = None,
    column: str | None = None,
    *,
    stdin: BinaryIO | None = None,
) -> list[InputRow]:
    """The reactions given as arguments, then those of ``path`` (``None``: no file).

    Raises:
        InputFileError: an unusable file or column (see :func:`read_input_rows`), ``column``
            without a file, or no reaction at all.
    """
    if column is not None and path is None:
        raise InputFileError("--column needs --input FILE (a CSV or TSV file with a header)")
    rows = argument_rows(arguments)
    if path is not None:
        rows += read_input_rows(path, column, stdin=stdin)
    if not rows:
        raise InputFileError("no reactions given: give them as arguments or --input FILE")
    return rows


def error_record(row: InputRow, message: str) -> dict:
    """The one record of a row that could not be predicted: no product, ``error`` set."""
    return {
        "source": row.source,
        "line": row.line,
        "input": row.text,
        "rank": None,
        "product": None,
        "valid": False,
        "score": None,
        "probability": None,
        "error": message,
    }


def prediction_records(row: InputRow, ranked: Sequence[dict]) -> list[dict]:
    """One record per ranked product of ``row`` (as :func:`reaction_nmt.predict.rank_products`
    gives them: ``rank``, ``smiles``, ``valid``, ``score``, ``probability``)."""
    if not ranked:
        return [error_record(row, "the model gave no prediction")]
    return [
        {
            "source": row.source,
            "line": row.line,
            "input": row.text,
            "rank": r["rank"],
            "product": r["smiles"],
            "valid": r["valid"],
            "score": r["score"],
            "probability": r["probability"],
            "error": None,
        }
        for r in ranked
    ]


def render_jsonl(records: Iterable[dict]) -> str:
    """One JSON object per line (UTF-8 text, non-ASCII characters kept)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def render_csv(records: Iterable[dict]) -> str:
    """A CSV table with a header of :data:`RECORD_FIELDS`; a missing value is an empty cell,
    ``valid`` is ``true``/``false``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    for r in records:
        writer.writerow([_cell(r.get(field)) for field in RECORD_FIELDS])
    return buffer.getvalue()


def render_text(rows: Sequence[InputRow], answers: Sequence[list[dict] | str]) -> str:
    """The human-readable answer: each predicted input, then its products, one per line
    (``  1. CCO  score -0.1234``, an invalid one flagged); inputs with an error are left out
    (they are reported on stderr)."""
    from chemprune.common.options import printable

    lines = []
    for row, answer in zip(rows, answers, strict=True):
        if isinstance(answer, str):
            continue
        lines.append(printable(row.text))
        for r in answer:
            flag = "" if r["valid"] else "  (invalid SMILES)"
            smiles = printable(r["smiles"])  # an invalid one is the model's raw tokens
            lines.append(f"  {r['rank']}. {smiles}  score {r['score']:.4f}{flag}")
    return "".join(line + "\n" for line in lines)


def render(fmt: str, rows: Sequence[InputRow], answers: Sequence[list[dict] | str]) -> str:
    """The answers in format ``fmt``.

    Args:
        fmt: ``text``, ``jsonl``, ``csv`` (see :data:`FORMATS`) or ``json`` (the older
            ``--json``: one list of ``{"input", "products"}``, inputs with an error left out).
        rows: the inputs.
        answers: for each row, its ranked products (as
            :func:`reaction_nmt.predict.rank_products` gives them) or its error message.
    """
    if fmt == "text":
        return render_text(rows, answers)
    if fmt == "json":
        listed = [
            {"input": row.text, "products": list(answer)}
            for row, answer in zip(rows, answers, strict=True)
            if not isinstance(answer, str)
        ]
        return json.dumps(listed, indent=2) + "\n"
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)} or json")
    records: list[dict] = []
    for row, answer in zip(rows, answers, strict=True):
        if isinstance(answer, str):
            records.append(error_record(row, answer))
        else:
            records += prediction_records(row, answer)
    return render_jsonl(records) if fmt == "jsonl" else render_csv(records)


def write_output(text: str, path: str | os.PathLike | None, *, stdout: TextIO | None = None):
    """Write ``text`` to ``path`` atomically (a temporary file in the same folder, then
    ``os.replace``: a reader never sees half a file, a failure leaves the old one), or to
    ``stdout`` (default ``sys.stdout``) when ``path`` is ``None`` or ``-``.

    The caller checks ``path`` first (``chemprune.common.runfolder.check_output_path``: not an
    input, writable).
    """
    if path is None or is_stdin(path):
        out = stdout if stdout is not None else sys.stdout
        out.write(text)
        out.flush()
        return
    from chemprune.common.atomic import atomic_write_text

    atomic_write_text(path, text)
