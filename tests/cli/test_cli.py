"""The chemprune command line end to end (subprocesses, tiny data)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_cli


def test_evaluate_text_and_json(trained, qm9_dir):
    r = run_cli(
        "evaluate", "--model", str(trained), "--data-dir", str(qm9_dir), "--split", "test", "--json"
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["n"] == 24 and res["unit"] == "eV" and 0 < res["mae"] <= res["rmse"]
    r = run_cli("evaluate", "--model", str(trained), "--data-dir", str(qm9_dir), "--limit", "5")
    assert r.returncode == 0 and "on 5 test molecules: MAE" in r.stdout


def test_predict_smiles_json(trained):
    r = run_cli(
        "predict", "--model", str(trained), "--smiles", "CCO", "--smiles", "c1ccccc1", "--json"
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["smiles"] for x in rows] == ["CCO", "c1ccccc1"]
    assert all(x["target"] == "gap" and x["unit"] == "eV" and 0 < x["value"] < 30 for x in rows)


def test_predict_mixed_good_and_bad_inputs(trained, tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("# name column is optional\nCCO ethanol\nC1CC broken\nCCCl chloroethane\nCC#N\n")
    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    bad_xyz = tmp_path / "bad.xyz"
    bad_xyz.write_text("5\ncut short\nC 0 0 0\nH 0 0 1.09\n")
    r = run_cli(
        "predict",
        "--model",
        str(trained),
        "--smiles-file",
        str(smi),
        "--xyz",
        str(xyz),
        "--xyz",
        str(bad_xyz),
        "--smiles",
        "Xx",
        "--json",
    )
    assert r.returncode == 1
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x.get("name", x.get("smiles", x.get("file"))) for x in rows] == [
        "ethanol",
        f"{tmp_path}/mols.smi:5",
        str(xyz),
    ]
    err = r.stderr.splitlines()
    assert len(err) == 4 and all(e.startswith("chemprune: error: ") for e in err)
    assert any("'C1CC'" in e for e in err) and any("Cl not supported" in e for e in err)
    assert any("bad.xyz" in e for e in err) and any("'Xx'" in e for e in err)


def test_bad_arguments_and_files(trained, tmp_path, qm9_dir):
    r = run_cli(
        "train", "--data-dir", str(qm9_dir), "--target", "bandgap", "--out", str(tmp_path / "x")
    )
    assert r.returncode == 2 and "unknown QM9 target 'bandgap'" in r.stderr
    r = run_cli("train", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "is not a folder" in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(trained.read_bytes()[:500])
    r = run_cli("predict", "--model", str(bad), "--smiles", "CCO")
    assert r.returncode == 2 and "bad.pt is truncated or corrupted" in r.stderr
    r = run_cli("predict", "--model", str(trained))
    assert r.returncode == 2 and "nothing to predict" in r.stderr
    r = run_cli("evaluate", "--model", str(tmp_path / "none.pt"))
    assert r.returncode == 2 and "none.pt does not exist" in r.stderr
    r = run_cli("train", "--data-dir", str(qm9_dir), "--lr", "-1", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "argument --lr: must be a finite number > 0" in r.stderr


@pytest.mark.data
@pytest.mark.parametrize("prune_minutes", ["0", "0.1"])
def test_demo_end_to_end(tmp_path, prune_minutes):
    out = tmp_path / "demo"
    r = run_cli(
        "demo",
        "--out",
        str(out),
        "--subset",
        "400",
        "--minutes",
        "0.1",
        "--prune-minutes",
        prune_minutes,
        "--threads",
        "1",
    )
    assert r.returncode == 0, r.stderr
    assert "test MAE" in r.stdout and "predicting the training mean" in r.stdout
    for name in ("ethanol", "benzene", "pyridine"):
        assert name in r.stdout
    if (REPO / "models" / "schnet_gap_small_tab.pt").exists():  # the released model, tabulated
        rows = [ln for ln in r.stdout.splitlines() if "tabulated " in ln and "|d|" in ln]
        assert len(rows) == 6 and all(float(ln.split("|d|")[1]) < 1e-4 for ln in rows)
        assert "batch 64" in r.stdout
    if prune_minutes == "0":
        assert f"checkpoint: {out}/best.pt" in r.stdout and (out / "best.pt").exists()
        assert "attention AutoPrune" not in r.stdout
    else:
        assert "[4/4] attention AutoPrune" in r.stdout
        rows = [
            ln.split() for ln in r.stdout.splitlines() if ln.strip().startswith(("dense", "pruned"))
        ]
        assert [row[0] for row in rows] == ["dense", "pruned"]
        assert "32/32" in r.stdout and (out / "pruned.pt").exists()
        assert f"checkpoint: {out}/pruned.pt" in r.stdout


@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda", "CUDA is not available"), ("gpu0", "is not a device name")],
)
def test_train_rejects_unusable_devices(qm9_dir, tmp_path, device, message):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    r = run_cli("train", "--data-dir", str(qm9_dir), "--out", str(out), "--device", device)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()  # nothing started, nothing written
