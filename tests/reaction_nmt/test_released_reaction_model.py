"""The released reaction model under models/: it loads with its checksum, predicts a product
for the README's example, and its card states what benchmarks/uspto_release.py measured."""

from __future__ import annotations

import json
import re

import pytest

from reaction_nmt.cli import main
from tests.conftest import REPO

MODEL = REPO / "models" / "uspto50k_compact.pt"
CARD = MODEL.with_suffix(".md")
RESULTS = REPO / "benchmarks" / "results" / "uspto_release.json"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no released reaction model yet")


def card_value(key: str) -> float:
    m = re.search(rf"^{key}:\s*([0-9.]+)", CARD.read_text(), flags=re.M)
    assert m, f"{CARD.name} states no {key}"
    return float(m.group(1))


def test_released_reaction_model_loads_predicts_and_has_a_card(capsys):
    from reaction_nmt.integrity import ALGORITHM
    from reaction_nmt.modelfile import is_sparse, load_checkpoint

    ckpt = load_checkpoint(MODEL)  # the checksum is checked here
    assert is_sparse(ckpt) and ckpt["integrity"]["algorithm"] == ALGORITHM
    assert ckpt.get("optim") is None  # no optimizer state shipped
    assert main(["predict", "--model", str(MODEL), "CC(=O)Cl.OCC", "--n-best", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    products = out[0]["products"]
    assert 1 <= len(products) <= 3 and products[0]["smiles"]  # spellings of one product merge
    card = CARD.read_text()
    assert "benchmarks/uspto_release.py" in card and "reaction-nmt evaluate" in card


def test_card_states_the_measured_numbers():
    result = json.loads(RESULTS.read_text())
    released = next(r for r in result["rows"] if r["model"] == "released")
    assert card_value("test_top1") == pytest.approx(released["top_k"]["1"], abs=5e-5)
    assert card_value("test_top5") == pytest.approx(released["top_k"]["5"], abs=5e-5)
    assert card_value("test_reactions") == released["test_reactions"] == 5004


@pytest.mark.slow
@pytest.mark.data
def test_card_top1_is_what_evaluate_measures(tmp_path, capsys):
    """Prepare the USPTO-50k test split as the release did and score the file (~5 min)."""
    liu = REPO.parent / "shared" / "datasets" / "uspto_50k" / "liu_split_smi"
    if not liu.is_dir():
        pytest.skip(f"USPTO-50k not found at {liu}")
    data = tmp_path / "data"
    files = [x for s in ("train", "valid", "test")
             for x in (f"--{s}", str(liu / f"retrosynthesis-{s}.smi.gz"))]  # fmt: skip
    assert main(["prepare", "--format", "liu-smi", *files, "--out", str(data)]) == 0
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--model", str(MODEL), "--data", str(data), "--split", "test",
            "--beam-size", "5", "--n-best", "5", "--max-length", "200", "--threads", "1",
            "--json", str(out), "--out-dir", str(tmp_path / "pred")]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["n"] == card_value("test_reactions")
    # one thread, as the release measured; a tie in the beam may still flip a reaction or two
    assert res["top_k"]["1"] == pytest.approx(card_value("test_top1"), abs=2.5 / res["n"])


def test_predict_prints_answers_without_backend_log_lines(monkeypatch):
    """OpenNMT-py logs INFO lines while loading and translating; a user reading the answers
    (or piping them) gets the answers only, and --debug brings the log back."""
    import subprocess
    import sys

    monkeypatch.delenv("CHEMPRUNE_DEBUG", raising=False)
    cmd = [
        sys.executable,
        "-m",
        "reaction_nmt.cli",
        "predict",
        "--model",
        str(MODEL),
        "CC(=O)Cl.OCC",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "INFO" not in r.stdout + r.stderr and "1. " in r.stdout
    r = subprocess.run(
        [*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert r.returncode == 0 and "INFO" in r.stdout + r.stderr
