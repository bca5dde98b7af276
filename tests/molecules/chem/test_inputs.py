"""Input files as streams (chemprune.molecules.chem.inputs) and the structure readers on top of them:
standard input, FIFOs, pipes (as process substitution gives them), /proc files, byte-order
marks, and the size limit enforced while reading."""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager

import pytest

from chemprune.molecules.chem.inputs import (
    InputFileError,
    decode_text,
    format_bytes,
    is_stream,
    read_input_bytes,
    read_input_lines,
    stdin_once,
)
from chemprune.molecules.chem.sanity import Limits, StructureError
from chemprune.molecules.chem.structures import read_smiles_file, read_structure_file

BOM = b"\xef\xbb\xbf"
WATER = b"3\nwater\nO 0 0 0\nH 0.96 0 0\nH 0 0.96 0\n"


@contextmanager
def fifo_with(tmp_path, data: bytes, name: str = "fifo"):
    """A FIFO that a thread fills with ``data`` (stat reports size 0, as for any pipe)."""
    path = tmp_path / name
    os.mkfifo(path)

    def write():
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except BrokenPipeError:  # the reader stopped early (a refused oversize stream)
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        writer.join(1)
        if writer.is_alive():  # never opened by the reader: a non-blocking open releases it
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a blocking one could wait for
            os.close(fd)  # a writer that has just finished: a hang)
        writer.join(5)


@contextmanager
def pipe_path(data: bytes):
    """``/dev/fd/N`` of an anonymous pipe holding ``data``: what ``<(...)`` hands a command."""
    r, w = os.pipe()

    def write():
        try:
            os.write(w, data)
        except BrokenPipeError:
            pass
        finally:
            os.close(w)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield f"/dev/fd/{r}"
    finally:
        writer.join(5)
        os.close(r)


def test_stdin_dash_is_read_and_named():
    data, label = read_input_bytes("-", what="SMILES file", max_bytes=100, stdin=io.BytesIO(b"C"))
    assert (data, label) == (b"C", "<stdin>")


def test_fifo_is_read_though_stat_says_zero(tmp_path):
    with fifo_with(tmp_path, b"CCO\n") as path:
        assert os.stat(path).st_size == 0 and is_stream(path)
        assert read_input_bytes(path, what="SMILES file", max_bytes=100) == (b"CCO\n", str(path))


def test_process_substitution_pipe_and_proc_file():
    with pipe_path(b"c1ccccc1 benzene\n") as path:
        assert read_input_bytes(path, what="SMILES file", max_bytes=100)[0].startswith(b"c1")
    assert os.stat("/proc/self/status").st_size == 0  # a /proc file: size 0, content non-empty
    data, _ = read_input_bytes("/proc/self/status", what="file", max_bytes=1 << 20)
    assert b"Pid:" in data


def test_oversize_stream_refused_while_reading(tmp_path):
    with fifo_with(tmp_path, b"C\n" * 1000) as path:  # 2,000 bytes through a pipe
        with pytest.raises(InputFileError, match=r"is more than 100 bytes, the limit"):
            read_input_bytes(path, what="SMILES file", max_bytes=100)
    with pytest.raises(InputFileError, match=r"/dev/zero is more than 64 KiB"):  # endless
        read_input_bytes("/dev/zero", what="SMILES file", max_bytes=64 << 10)
    big = tmp_path / "big.smi"
    big.write_bytes(b"C\n" * 100)
    with pytest.raises(InputFileError, match=r"big\.smi is 200 bytes, more than the limit"):
        read_input_bytes(big, what="SMILES file", max_bytes=100)
    assert read_input_bytes(big, what="SMILES file", max_bytes=200)[0] == b"C\n" * 100


def test_missing_folder_empty_and_empty_pipe(tmp_path):
    with pytest.raises(InputFileError, match=f"^SMILES file {tmp_path / 'no.smi'} does not exist$"):
        read_input_bytes(tmp_path / "no.smi", what="SMILES file", max_bytes=10)
    with pytest.raises(InputFileError, match=f"^SMILES file {tmp_path} is a directory$"):
        read_input_bytes(tmp_path, what="SMILES file", max_bytes=10)
    with fifo_with(tmp_path, b"") as path:
        with pytest.raises(InputFileError, match=f"^SMILES file {path} is empty$"):
            read_input_bytes(path, what="SMILES file", max_bytes=10)
    with pytest.raises(InputFileError, match="^SMILES file <stdin> is empty$"):
        read_input_bytes("-", what="SMILES file", max_bytes=10, stdin=io.BytesIO())


def test_decode_text_bom_and_errors():
    assert decode_text(BOM + b"CCO\n", "SMILES file", "f") == "CCO\n"
    assert decode_text("C\u00e9".encode(), "f", "x") == "C\u00e9"
    with pytest.raises(
        InputFileError, match=r"x is not UTF-8 text: byte 0xff at offset 7 \(line 2\)"
    ):
        decode_text(BOM + b"CC\nC\xff\n", "file", "x")
    with pytest.raises(InputFileError, match="UTF-16 text"):
        decode_text("CCO".encode("utf-16"), "file", "x")


def test_read_input_lines_and_stdin_once():
    lines, label = read_input_lines(
        "-", what="reaction file", max_bytes=100, stdin=io.BytesIO(BOM + b"# c\n\n A.B \r\nC\n")
    )
    assert (lines, label) == ([(3, "A.B"), (4, "C")], "<stdin>")
    with pytest.raises(InputFileError, match="more than 1 lines"):
        read_input_lines("-", what="f", max_bytes=100, max_lines=1, stdin=io.BytesIO(b"A\nB\n"))
    with pytest.raises(InputFileError, match="contains only blank or # lines"):
        read_input_lines("-", what="f", max_bytes=100, stdin=io.BytesIO(b"# x\n\n"))
    stdin_once(["a", "-"], "--x")
    with pytest.raises(InputFileError, match="more than once to --x"):
        stdin_once(["-", "b", "-"], "--x")
    assert format_bytes(2**30) == "1,024 MiB"


# ------------------------------------------------------------------ the structure readers


def test_smiles_file_with_bom_fifo_and_stdin(tmp_path, monkeypatch):
    path = tmp_path / "bom.smi"
    path.write_bytes(BOM + b"CCO ethanol\nC\n")
    assert read_smiles_file(path) == [("CCO", "ethanol"), ("C", f"{path}:2")]
    with fifo_with(tmp_path, BOM + b"CCO\n") as fifo:
        assert read_smiles_file(fifo) == [("CCO", f"{fifo}:1")]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"C#N cyanide\n")))
    assert read_smiles_file("-") == [("C#N", "cyanide")]
    with fifo_with(tmp_path, b"C\n" * 100, "big") as fifo:
        with pytest.raises(StructureError, match="is more than 100 bytes"):
            read_smiles_file(fifo, limits=Limits(max_file_bytes=100))


def test_structure_from_stdin_and_pipes_is_xyz(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BOM + WATER)))
    (st,) = read_structure_file("-")
    assert (st.name, st.source, st.z.tolist()) == ("<stdin>", "<stdin>", [8, 1, 1])
    with pipe_path(WATER + WATER) as path:  # process substitution: no suffix, XYZ
        assert [s.name for s in read_structure_file(path)] == [f"{path}#1", f"{path}#2"]
    with fifo_with(tmp_path, b"5\nx\nO 0 0 0\n") as path:  # the count lines are checked
        with pytest.raises(StructureError, match=f"{path} .*declares 5 atoms but the file ends"):
            read_structure_file(path)


def test_structure_fifo_takes_format_from_its_suffix(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    sdf = Chem.MolToMolBlock(mol).encode()
    with fifo_with(tmp_path, sdf, "mol.sdf") as path:
        (st,) = read_structure_file(path)
    assert sorted(st.z.tolist()) == [1, 1, 1, 1, 6, 8]


def test_structure_file_not_utf8_names_the_offset(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_bytes(WATER[:-3] + b"\xff\n")
    with pytest.raises(StructureError, match=r"bad\.xyz is not UTF-8 text: byte 0xff at offset"):
        read_structure_file(path)
