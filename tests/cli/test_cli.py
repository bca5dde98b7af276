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
def test_demo_shows_the_released_models_side_by_side():
    if not (REPO / "models" / "schnet_gap_small_tab.pt").exists():
        pytest.skip("no released models")
    r = run_cli("demo", "--json", "--time-molecules", "64")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    rows = result["models"]
    assert [x["name"] for x in rows[:2]] == ["schnet_gap_small", "schnet_gap_small_tab"]
    card = (REPO / "models" / "schnet_gap_small.md").read_text()
    assert f"test_mae: {rows[0]['test_mae']:.5f}" in card  # the card's number, measured again
    assert rows[0]["test_molecules"] == 10_831 and rows[1]["table_bytes"] > 0
    mols = {m["name"]: m for m in result["molecules"]}
    assert abs(mols["ethanol"]["qm9"] - 9.298) < 1e-3  # QM9's own value, found by SMILES
    assert all(m["qm9"] is not None for m in mols.values())
    for m in mols.values():  # the tabulated release predicts what the exact one does
        assert abs(m["predictions"][0] - m["predictions"][1]) < 1e-4
        assert len(m["predictions"]) == len(rows)
    r = run_cli("demo", "--time-molecules", "64")
    assert r.returncode == 0 and "schnet_gap_small_tab" in r.stdout and "ethanol" in r.stdout


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
