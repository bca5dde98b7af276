"""``reaction-nmt classify`` end to end on a tiny folder, and its bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "reaction_nmt.cli", "classify", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)  # fmt: skip


def test_train_evaluate_predict(liu_dir, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--data", str(liu_dir), "--out", str(run), "--epochs", "4", "--channels",
            "16,16", "--embed", "16", "--batch-size", "8", "--lr", "3e-3", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "best validation accuracy" in r.stdout and (run / "best.pt").exists()
    png = tmp_path / "conf.png"
    r = cli("evaluate", "--model", str(run / "best.pt"), "--data", str(liu_dir), "--json",
            "--confusion-png", str(png))  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["n"] == 8 and len(m["confusion"]) == 10 and png.stat().st_size > 1000
    r = cli("predict", "--model", str(run / "best.pt"), "CC(=O)Cl.NCCC>>CCCNC(C)=O", "C1CC>>CC",
            "CCO")  # fmt: skip
    assert r.returncode == 1  # two bad reactions, one good
    assert "'C1CC' is not a valid SMILES" in r.stderr and "not 'reactants>>product'" in r.stderr
    assert "class" in r.stdout


def test_bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "has no src-train.txt" in r.stderr
    r = cli("predict", "--model", str(tmp_path / "none.pt"), "CC>>C")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_prune_with_cdc_and_distillation(liu_dir, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--data", str(liu_dir), "--out", str(run), "--epochs", "3", "--channels",
            "16,16", "--embed", "16", "--batch-size", "8", "--lr", "3e-3", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "pruned"
    r = cli("prune", "--model", str(run / "best.pt"), "--data", str(liu_dir), "--out", str(out),
            "--flops", "0.33", "--method", "cdc", "--function", "fdr", "--coarse", "2",
            "--distill", "1.0", "--epochs", "1", "--batch-size", "8", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "cdc: channels 16->" in r.stdout and (out / "best.pt").exists()
    r = cli("prune", "--model", str(run / "best.pt"), "--data", str(liu_dir), "--out",
            str(tmp_path / "x"), "--flops", "0.5", "--function", "nonsense(mu_in)")  # fmt: skip
    assert r.returncode == 2 and "not a pruning-function expression" in r.stderr
