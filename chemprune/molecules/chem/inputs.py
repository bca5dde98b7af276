"""Input files read as a stream: ``-`` for standard input, pipes, FIFOs, ``/proc`` files.

One helper for every file a user hands to a command (SMILES, structures, reactions):
:func:`read_input_bytes` reads in chunks and refuses an input once more than ``max_bytes`` have
been read, so a pipe, a FIFO, process substitution (``<(...)``, ``/dev/fd/63``) or a ``/proc``
file, all of which report size 0 to ``stat``, is read like a regular file and a stream without
end (``/dev/zero``) is refused instead of filling the memory. :func:`decode_text` turns the
bytes into text: UTF-8 with or without a byte-order mark; anything else is refused with the byte
offset where it stops being UTF-8. Pure functions (no torch, no numpy); shared by ``chemprune``
and ``reaction-nmt``.
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STDIN",
    "STDIN_LABEL",
    "CHUNK_BYTES",
    "InputFileError",
    "input_label",
    "is_stdin",
    "is_stream",
    "read_input_bytes",
    "decode_text",
    "read_input_text",
    "read_input_lines",
    "format_bytes",
    "stdin_once",
]

STDIN = "-"
STDIN_LABEL = "<stdin>"
CHUNK_BYTES = 1 << 20


class InputFileError(ValueError):
    """An input file is unusable (missing, a folder, empty, too large, not UTF-8 text); the
    message is one line naming the file."""


def is_stdin(path: str | os.PathLike) -> bool:
    """Whether ``path`` is ``-``, standard input."""
    return os.fspath(path) == STDIN


def input_label(path: str | os.PathLike) -> str:
    """How messages and default names show an input: ``<stdin>`` for ``-``, else the path."""
    return STDIN_LABEL if is_stdin(path) else os.fspath(path)


def is_stream(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as a stream that cannot be opened twice: ``-``, a pipe or FIFO
    (process substitution included), a character device. A missing path is not a stream."""
    if is_stdin(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: ``1,024 MiB``, ``64 KiB``, ``100 bytes``."""
    if n >= 2**20:
        return f"{n / 2**20:,.0f} MiB"
    if n >= 2**10:
        return f"{n / 2**10:,.0f} KiB"
    return f"{n:,} bytes"


def _reason(err: OSError) -> str:
    return (err.strerror or type(err).__name__).lower()


def read_input_bytes(
    path: str | os.PathLike,
    *,
    what: str,
    max_bytes: int,
    stdin: BinaryIO | None = None,
) -> tuple[bytes, str]:
    """All bytes of an input file, ``-`` being standard input.

    Works on anything that can be read: regular files, pipes and FIFOs, process substitution,
    ``/proc`` and ``/dev/fd`` files. The size limit is enforced while reading (a regular file
    larger than it is refused from its size first, without reading it).

    Args:
        path: the file, or ``-`` for standard input.
        what: what the file is, for messages (``"SMILES file"``).
        max_bytes: the most bytes accepted.
        stdin: the stream read for ``-`` (default ``sys.stdin.buffer``).

    Returns:
        ``(data, label)``: the bytes and how to name the input (``<stdin>`` for ``-``).

    Raises:
        InputFileError: ``"<what> <path> does not exist"``, ``"... is a directory"``,
            ``"... is empty"``, ``"... is more than N MiB, the limit"``, ``"could not read
            <what> <path>: <reason>"``.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    label = input_label(path)
    if is_stdin(path):
        fh = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
        if fh is None:
            raise InputFileError(f"{what} {label}: there is no standard input to read")
        return _read_stream(fh, what, label, max_bytes), label
    text = os.fspath(path)
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise InputFileError(f"{what} {label} does not exist") from None
    except OSError as err:
        raise InputFileError(f"could not read {what} {label}: {_reason(err)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"{what} {label} is a directory")
    if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:  # /proc files say 0: read them
        raise InputFileError(
            f"{what} {label} is {format_bytes(st.st_size)}, more than the limit of "
            f"{format_bytes(max_bytes)}"
        )
    try:
        with open(text, "rb") as fh:
            return _read_stream(fh, what, label, max_bytes), label
    except OSError as err:
        raise InputFileError(f"could not read {what} {label}: {_reason(err)}") from None


def _read_stream(fh: BinaryIO, what: str, label: str, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = fh.read(min(CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise InputFileError(
                f"{what} {label} is more than {format_bytes(max_bytes)}, the limit (refused "
                "while reading)"
            )
    if total == 0:
        raise InputFileError(f"{what} {label} is empty")
    return b"".join(chunks)


_UTF16_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(data: bytes, what: str, label: str) -> str:
    """``data`` as UTF-8 text; a UTF-8 byte-order mark at the start is dropped.

    Raises:
        InputFileError: UTF-16 or UTF-32 text (named by its byte-order mark), or bytes that
            are not UTF-8 (``"<what> <label> is not UTF-8 text: byte 0xff at offset 12 (line
            2)"``).
    """
    skipped = 0
    if data.startswith(codecs.BOM_UTF8):
        skipped = len(codecs.BOM_UTF8)
        data = data[skipped:]
    elif data.startswith(_UTF16_BOMS):
        kind = "UTF-32" if data.startswith(_UTF16_BOMS[:2]) else "UTF-16"
        raise InputFileError(
            f"{what} {label} is {kind} text (it starts with a {kind} byte-order mark); save it "
            "as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start + skipped  # in the file, byte-order mark included
        line = data.count(b"\n", 0, err.start) + 1
        raise InputFileError(
            f"{what} {label} is not UTF-8 text: byte 0x{data[err.start]:02x} at offset "
            f"{offset} (line {line}); save it as UTF-8"
        ) from None


def read_input_text(
    path: str | os.PathLike, *, what: str, max_bytes: int, stdin: BinaryIO | None = None
) -> tuple[str, str]:
    """:func:`read_input_bytes` then :func:`decode_text`: ``(text, label)``."""
    data, label = read_input_bytes(path, what=what, max_bytes=max_bytes, stdin=stdin)
    return decode_text(data, what, label), label


def read_input_lines(
    path: str | os.PathLike,
    *,
    what: str,
    max_bytes: int,
    max_lines: int | None = None,
    comments: bool = True,
    stdin: BinaryIO | None = None,
) -> tuple[list[tuple[int, str]], str]:
    """The non-blank lines of a text input, stripped, with their line numbers.

    Args:
        path: the file, or ``-`` for standard input.
        what: what the file is, for messages.
        max_bytes: the most bytes accepted.
        max_lines: the most kept lines accepted (``None``: no limit).
        comments: skip lines starting with ``#``.
        stdin: the stream read for ``-``.

    Returns:
        ``([(lineno, line), ...], label)``.

    Raises:
        InputFileError: as :func:`read_input_bytes` and :func:`decode_text`; more than
            ``max_lines`` lines; no line left (``"<what> <label> contains only blank or #
            lines"``).
    """
    text, label = read_input_text(path, what=what, max_bytes=max_bytes, stdin=stdin)
    lines: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (comments and line.startswith("#")):
            continue
        lines.append((lineno, line))
        if max_lines is not None and len(lines) > max_lines:
            raise InputFileError(f"{what} {label}: more than {max_lines:,} lines")
    if not lines:
        kept = "blank or # lines" if comments else "blank lines"
        raise InputFileError(f"{what} {label} contains only {kept}")
    return lines, label


def stdin_once(paths: list[str | os.PathLike | Path], flags: str) -> None:
    """Refuse ``-`` given more than once among ``paths`` (standard input can be read once).

    Raises:
        InputFileError: ``"- (standard input) is given twice to <flags>: it can be read once"``.
    """
    if sum(is_stdin(p) for p in paths) > 1:
        raise InputFileError(
            f"- (standard input) is given more than once to {flags}; it can be read only once"
        )
