import pytest

from reaction_nmt.scoring import format_table, read_nbest, score_predictions

TARGETS = ["CCO", "CC(=O)NCC", "c1ccccc1", "C[C@@H](N)C(=O)O"]
PREDICTIONS = [
    ["OCC", "CCC"],  # canonical equivalent at rank 1
    ["CC(=O)N", "CCNC(C)=O"],  # right at rank 2
    ["c1ccc", "C1CCCCC1"],  # invalid then wrong: never right
    ["C[C@H](N)C(=O)O", "N[C@H](C)C(=O)O"],  # wrong stereo first, same molecule second
]


def test_top_k_by_canonical_match():
    r = score_predictions(TARGETS, PREDICTIONS, top_k=(1, 2, 5))
    assert r["n"] == 4
    assert r["top_k"] == {"1": 0.25, "2": 0.75, "5": 0.75}
    assert r["invalid_top1"] == 0.25
    assert r["invalid_all"] == 1 / 8


def test_invalid_prediction_never_counts_even_if_target_text_matches_badly():
    r = score_predictions(["CCO"], [["C(C", "CCO"]], top_k=(1, 2))
    assert r["top_k"] == {"1": 0.0, "2": 1.0}


def test_duplicate_spellings_do_not_take_a_rank():
    r = score_predictions(["CCN"], [["CCO", "OCC", "NCC"]], top_k=(1, 2))
    assert r["top_k"] == {"1": 0.0, "2": 1.0}


def test_errors_and_table(tmp_path):
    with pytest.raises(ValueError, match="2 targets but 1"):
        score_predictions(["C", "CC"], [["C"]])
    with pytest.raises(ValueError, match="not a valid SMILES"):
        score_predictions(["C1C"], [["C"]])
    table = format_table(score_predictions(TARGETS, PREDICTIONS), title="t")
    assert "top-1" in table and "25.00%" in table
    path = tmp_path / "p.txt"
    path.write_text("a\nb\nc\n")
    assert read_nbest(path, 3) == [["a", "b", "c"]]
    with pytest.raises(ValueError, match="not a multiple"):
        read_nbest(path, 2)
