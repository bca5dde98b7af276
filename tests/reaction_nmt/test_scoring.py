import pytest

from reaction_nmt.scoring import (
    format_table,
    mcnemar_exact,
    paired_top1,
    read_nbest,
    score_predictions,
    top1_hits,
)

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


def test_top1_hits_agree_with_top1_accuracy():
    hits = top1_hits(TARGETS, PREDICTIONS)
    assert hits == [True, False, False, False]
    assert sum(hits) / len(hits) == score_predictions(TARGETS, PREDICTIONS)["top_k"]["1"]
    assert top1_hits(["CCO"], [[]]) == [False]
    with pytest.raises(ValueError, match="targets but"):
        top1_hits(["C", "CC"], [["C"]])


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 2 * (1/2)^5
    assert mcnemar_exact(0, 5) == mcnemar_exact(5, 0)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_top1_counts_each_example_once():
    targets = ["CCO", "CCN", "CCC", "CCCl"]
    a = [["OCC"], ["CCN"], ["CCO"], ["C(C"]]  # right, right, wrong, invalid
    b = [["CCO"], ["CCO"], ["CCC"], ["CCO"]]  # right, wrong, right, wrong
    r = paired_top1(targets, a, b)
    assert (r["n"], r["both"], r["only_a"], r["only_b"], r["neither"]) == (4, 1, 1, 1, 1)
    assert r["difference"] == 0.0
    assert r["p_value"] == 1.0
    r = paired_top1(targets, b, [["C"]] * 4)
    assert (r["only_a"], r["only_b"], r["difference"]) == (2, 0, 0.5)
