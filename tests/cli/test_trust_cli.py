"""The command line refuses what would give a wrong answer or damage a user's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from tests.cli.conftest import TINY
from tests.conftest import REPO, run_cli


def test_predict_multi_fragment_and_lookalike_smiles(trained):
    r = run_cli("predict", "--model", str(trained), "--smiles", "C.C", "--smiles", "C", "--json")
    assert r.returncode == 0, r.stderr
    two, one = (json.loads(line) for line in r.stdout.splitlines())
    assert two["fragments"] == 2 and "fragments" not in one
    assert "C.C: 2 fragments, embedded apart" in r.stderr
    # two non-interacting methanes: the mean-readout gap equals one methane's
    assert two["value"] == pytest.approx(one["value"], abs=1e-3)
    r = run_cli("predict", "--model", str(trained), "--smiles", "C.C", "--runtime", "torchscript",
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["value"] == pytest.approx(two["value"], abs=1e-5)
    r = run_cli(
        "predict", "--model", str(trained), "--fragments", "refuse", "--smiles", "C.C",
        "--smiles", "C\u0421O", "--smiles", "CCO",
    )  # fmt: skip
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 1 and "CCO" in r.stdout
    err = r.stderr.splitlines()
    assert len(err) == 2 and "2 disconnected fragments" in err[0]
    assert "character 'С' (U+0421) at position 2 is not a SMILES character" in err[1]


def test_predict_refuses_overlapping_atoms(trained, tmp_path):
    xyz = tmp_path / "coincident.xyz"
    xyz.write_text("3\n\nO 0 0 0\nH 0 0 0\nH 0 0.76 0.58\n")
    r = run_cli("predict", "--model", str(trained), "--xyz", str(xyz), "--json")
    assert r.returncode == 1 and r.stdout == ""
    assert "atoms 1 (O) and 2 (H) are 0.000 A apart" in r.stderr


def test_damaged_models_refused(trained, tmp_path):
    from chemprune.common.atomic import atomic_save, weights_digest
    from chemprune.molecules.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained)
    state = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    state["embedding.weight"][1, 0] = float("nan")
    ckpt["state_dict"] = state
    ckpt["integrity"]["digest"] = weights_digest(state, ckpt["config"], ckpt["target"])
    atomic_save(ckpt, tmp_path / "nan.pt")
    r = run_cli("predict", "--model", str(tmp_path / "nan.pt"), "--smiles", "CCO", "--json")
    assert r.returncode == 2 and r.stdout == "" and "non-finite weight" in r.stderr
    ckpt["state_dict"]["embedding.weight"][1, 0] = 0.5  # checksum now stale
    torch.save(ckpt, tmp_path / "flipped.pt")
    r = run_cli("evaluate", "--model", str(tmp_path / "flipped.pt"))
    assert r.returncode == 2 and "flipped.pt is corrupted" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-lr=-1e-3"], "argument --min-lr: must be a finite number >= 0"),
        (["--lr-factor", "0"], "argument --lr-factor: must be a finite number > 0 and < 1"),
        (["--lr-patience", "-1"], "argument --lr-patience: must be an integer >= 0"),
        (["--checkpoint-every", "-1"], "argument --checkpoint-every: must be an integer >= 0"),
        (["--max-minutes", "nan"], "argument --max-minutes: must be a finite number > 0"),
        (["--max-grad-norm", "inf"], "argument --max-grad-norm: must be a finite number >= 0"),
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got '0'"),
        (["--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295]"),
        (["--threads", "100000"], "argument --threads: must be an integer in [1, "),
        (["--lr", "-1"], "argument --lr: must be a finite number > 0"),
    ],
)
def test_train_option_ranges(qm9_dir, tmp_path, args, message):
    r = run_cli("train", "--data-dir", str(qm9_dir), "--out", str(tmp_path / "x"), *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "argument --limit: must be an integer >= 1"),
        (["--limit", "-2"], "argument --limit: must be an integer >= 1"),
        (["--batch-size", "-1"], "argument --batch-size: must be an integer >= 1"),
    ],
)
def test_evaluate_option_ranges(trained, args, message):
    r = run_cli("evaluate", "--model", str(trained), *args)
    assert r.returncode == 2 and message in r.stderr


def test_outputs_never_overwrite_inputs(trained, tmp_path):
    copy = tmp_path / "model.pt"
    copy.write_bytes(trained.read_bytes())
    before = copy.read_bytes()
    r = run_cli(
        "prune", "--model", str(copy), "--method", "magnitude", "--sparsity", "0.5",
        "--out", str(copy),
    )  # fmt: skip
    assert r.returncode == 2 and "--out" in r.stderr and "same file as --model" in r.stderr
    r = run_cli("export", "--model", str(copy), "--out", str(tmp_path))
    assert r.returncode == 2 and "is a directory" in r.stderr
    r = run_cli("export", "--model", str(copy), "--out", str(copy))
    assert r.returncode == 2 and "same file as --model" in r.stderr
    assert copy.read_bytes() == before


def test_new_run_refused_in_a_folder_with_a_run(qm9_dir, trained, tmp_path):
    run = tmp_path / "finished"
    run.mkdir()
    (run / "best.pt").write_bytes(trained.read_bytes())
    (run / "history.jsonl").write_text('{"epoch": 1}\n')
    r = run_cli("train", "--data-dir", str(qm9_dir), "--out", str(run), "--epochs", "1", *TINY)
    assert r.returncode == 2 and "already holds files of another run" in r.stderr
    assert (run / "best.pt").read_bytes() == trained.read_bytes()
    assert (run / "history.jsonl").read_text() == '{"epoch": 1}\n'


def test_two_trainers_in_one_folder(qm9_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "chemprune", "train", "--data-dir", str(qm9_dir), "--out",
           str(out), "--epochs", "500", *TINY]  # fmt: skip
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".lock").exists() and (out / ".lock").read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        r = run_cli("train", "--data-dir", str(qm9_dir), "--out", str(out), "--resume", *TINY)
        assert r.returncode == 2, r.stderr
        assert f"is in use by process {first.pid}" in r.stderr and "(chemprune train)" in r.stderr
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert first.returncode == 130  # state saved on SIGTERM; the run is intact and resumable
    assert (out / "last.pt").exists() and (out / ".lock").read_text() == ""


def test_demo_names_a_missing_model(tmp_path):
    r = run_cli("demo", "--models", str(tmp_path / "none.pt"))
    assert r.returncode == 2 and "none.pt does not exist" in r.stderr


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys, tmp_path):
    import chemprune.cli as cli
    from chemprune.cli import predict

    def boom(args):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(predict, "run_predict", boom)
    argv = ["predict", "--model", str(tmp_path / "m.pt"), "--smiles", "C"]
    assert cli.main(argv) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: something broke" in err
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["--debug", *argv])
