"""Issue 35 from the command line: inputs through real pipes (``-``, FIFOs), a byte-order mark,
and output paths refused before any work, in one line naming the option."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from chemprune.cli import main
from tests.conftest import REPO, run_cli

MODEL = REPO / "models" / "schnet_gap_small.pt"
WATER = "3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no released gap model")


def test_predict_smiles_from_a_pipe():
    r = run_cli("predict", "--model", str(MODEL), "--smiles-file", "-", input="CCO\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("<stdin>:1\tgap = ") and "empty" not in r.stderr


def test_predict_xyz_from_stdin_and_bom_smiles_file(tmp_path):
    smi = tmp_path / "bom.smi"
    smi.write_bytes(b"\xef\xbb\xbfCCO ethanol\n")
    argv = ["predict", "--model", str(MODEL), "--smiles-file", str(smi), "--xyz", "-", "--json"]
    r = run_cli(*argv, input=WATER)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x.get("name"), x.get("smiles"), x.get("file")) for x in rows] == [
        ("ethanol", "CCO", None),
        (None, None, "<stdin>"),
    ]


def test_predict_smiles_file_from_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "mols"
    os.mkfifo(fifo)
    writer = threading.Thread(
        target=lambda: fifo.write_text("C#N\nc1ccccc1 benzene\n"), daemon=True
    )
    writer.start()
    code = main(["predict", "--model", str(MODEL), "--smiles-file", str(fifo), "--threads", "1"])
    writer.join(5)
    out = capsys.readouterr().out
    assert code == 0 and f"{fifo}:1\tgap = " in out and "benzene\tgap = " in out


def test_stdin_given_twice_refused(capsys):
    argv = ["predict", "--model", str(MODEL), "--smiles-file", "-", "--xyz", "-"]
    assert main(argv) == 2
    assert "given more than once to --smiles-file/--xyz" in capsys.readouterr().err


@pytest.fixture
def note(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a folder\n")
    return path


def _argv(command: str, out: str, tmp_path) -> list[str]:
    model = str(MODEL)
    return {
        # a prune of many fine-tuning steps: minutes if it ever started
        "prune": ["prune", "--model", model, "--method", "magnitude", "--sparsity", "0.5",
                  "--finetune-steps", "100000", "--threads", "1", "--no-progress", "--out", out],
        "tabulate": ["tabulate", "--model", model, "--out", out],
        "export": ["export", "--model", model, "--out", out],
        "import": ["import", "--weights", model, "--target", "gap", "--out", out],
        "train": ["train", "--target", "gap", "--epochs", "1000", "--no-progress", "--out", out],
    }[command]  # fmt: skip


@pytest.mark.parametrize("command", ["prune", "tabulate", "export", "import", "train"])
@pytest.mark.parametrize("where", ["proc", "file_as_folder"])
def test_output_path_refused_before_the_work(command, where, note, tmp_path, capsys):
    out = "/proc/self/m.pt2" if where == "proc" else str(note / "m.pt2")
    before = sorted(p.name for p in tmp_path.iterdir())
    start = time.perf_counter()
    assert main(_argv(command, out, tmp_path)) == 2
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"chemprune: error: --out {out}")
    expected = "is under /proc" if where == "proc" else f"{note} is a file, not a folder"
    assert expected in err and "Errno" not in err and ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert seconds < 20, f"{command} refused only after {seconds:.0f} s"


def test_output_directory_and_device_refused(tmp_path, capsys):
    assert main(_argv("export", str(tmp_path), tmp_path)) == 2
    assert f"--out {tmp_path} is a directory; give a file name" in capsys.readouterr().err
    assert main(_argv("export", "/dev/null", tmp_path)) == 2
    assert "--out /dev/null is not a regular file" in capsys.readouterr().err
