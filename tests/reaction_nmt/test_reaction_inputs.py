"""Issue 35 on the reaction side: ``reaction-nmt predict --file`` (and ``classify predict
--file``, ``tokenize --file``) read reactions from files, ``-`` and pipes through the shared
stream reader; evaluate's --json is checked before the work."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from chemprune.molecules.chem.inputs import InputFileError
from reaction_nmt.cli import main
from reaction_nmt.predict import read_reactions
from tests.conftest import REPO

MODEL = REPO / "models" / "uspto50k_compact.pt"


def test_read_reactions_skips_blank_and_comment_lines_and_a_bom(tmp_path):
    path = tmp_path / "r.txt"
    path.write_bytes(b"\xef\xbb\xbfCC(=O)Cl.OCC\n# a comment\n\n  CCO>O  \n")
    assert read_reactions(path) == ["CC(=O)Cl.OCC", "CCO>O"]
    assert read_reactions("-", stdin=io.BytesIO(b"CCO\n")) == ["CCO"]
    with pytest.raises(InputFileError, match="reaction file <stdin> is empty"):
        read_reactions("-", stdin=io.BytesIO(b""))
    with pytest.raises(InputFileError, match=r"r2\.txt does not exist"):
        read_reactions(tmp_path / "r2.txt")


def test_predict_and_classify_need_reactions_or_a_readable_file(tmp_path, capsys):
    missing = tmp_path / "model.pt"  # never loaded: the inputs are read first
    assert main(["predict", "--model", str(missing)]) == 2
    assert "no reactions given: give them as arguments or --input FILE" in capsys.readouterr().err
    assert main(["predict", "--model", str(missing), "--file", str(tmp_path / "none.txt")]) == 2
    assert "none.txt does not exist" in capsys.readouterr().err
    argv = ["classify", "predict", "--model", str(missing), "--file", "/dev/null"]
    assert main(argv) == 2
    assert "reaction file /dev/null is empty" in capsys.readouterr().err


def test_tokenize_file_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfC#N\n\nCCO\n")))
    assert main(["tokenize", "--file", "-"]) == 0
    assert capsys.readouterr().out.splitlines() == ["C # N", "C C O"]


def test_evaluate_json_checked_before_the_work(tmp_path, capsys):
    note = tmp_path / "notes.txt"
    note.write_text("x\n")
    argv = ["evaluate", "--predictions", str(note), "--targets", str(note)]
    assert main([*argv, "--json", str(note / "r.json")]) == 2
    assert f"--json {note}/r.json: {note} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(not MODEL.exists(), reason="no released reaction model")
def test_predict_reactions_from_a_pipe():
    cmd = [sys.executable, "-m", "reaction_nmt.cli", "predict", "--model", str(MODEL), "--file",
           "-", "--n-best", "2", "--threads", "1", "--json"]  # fmt: skip
    r = subprocess.run(
        cmd, input="# one reaction\nCC(=O)Cl.OCC\n", capture_output=True, text=True, cwd=REPO,
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["input"] == "CC(=O)Cl.OCC" and row["products"][0]["smiles"]
