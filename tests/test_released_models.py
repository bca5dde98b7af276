"""Released models under models/: they load, predict, and their cards state what they measure."""

from __future__ import annotations

import json
import re

import pytest

from chemprune.molecules.checkpoint import load_model
from tests.conftest import REPO, run_cli

RELEASED = sorted((REPO / "models").glob("schnet_*.pt"))  # reaction models: tests/reaction_nmt


def card_of(path):
    return path.with_suffix(".md")


def card_value(path, key: str) -> float:
    m = re.search(rf"^{key}:\s*([0-9.]+)", card_of(path).read_text(), flags=re.M)
    assert m, f"{card_of(path).name} states no {key}"
    return float(m.group(1))


def test_there_is_a_released_gap_model():
    assert any(load_model(p)[1]["target"]["name"] == "gap" for p in RELEASED)


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_released_model_loads_predicts_and_has_a_card(path):
    model, ckpt = load_model(path)
    assert card_of(path).exists()
    card = card_of(path).read_text()
    assert any(f"chemprune {c}" in card for c in ("train", "prune", "tabulate"))  # its command
    assert "training" not in ckpt  # no optimizer state shipped
    r = run_cli("predict", "--model", str(path), "--smiles", "CCO", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    if ckpt["target"]["name"] == "gap":
        assert 8.0 < out["value"] < 11.0  # QM9 lists 9.30 eV for ethanol
    if ckpt["target"]["name"] == "U0":
        assert -4230.0 < out["value"] < -4200.0  # QM9 lists -154.99 Ha = -4217.6 eV for ethanol


@pytest.mark.data
@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_card_test_mae_is_what_evaluate_measures(path):
    r = run_cli("evaluate", "--model", str(path), "--split", "test", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    # the gap models' standard split; cards of models with their own split state its size
    molecules = re.search(r"^test_molecules:\s*([0-9]+)", card_of(path).read_text(), flags=re.M)
    assert res["n"] == (int(molecules.group(1)) if molecules else 10_831)
    assert res["mae"] == pytest.approx(card_value(path, "test_mae"), abs=5e-5)
