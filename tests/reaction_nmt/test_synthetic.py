"""The synthetic template reactions, and a tiny model that learns them (slow)."""

import json
from collections import Counter

import pytest

from reaction_nmt import synthetic
from reaction_nmt.chem import canonicalize


def test_every_template_gives_valid_unambiguous_reactions():
    reactions = synthetic.generate()
    counts = Counter(r.template for r in reactions)
    assert set(counts) == {t.name for t in synthetic.TEMPLATES}
    assert len(reactions) > 1000
    for r in reactions:
        assert canonicalize(r.product) == r.product
        assert r.product not in r.reactants.split(".")
    amide = next(r for r in reactions if r.reactants == "CC(=O)O.CN")
    assert amide.product == "CNC(C)=O"
    boc = next(r for r in reactions if r.template == "boc_deprotection")
    assert "C(=O)OC(C)(C)C" not in boc.product


def test_split_is_disjoint_and_seeded():
    reactions = synthetic.generate()
    a, b = synthetic.split(reactions, seed=1), synthetic.split(reactions, seed=1)
    assert a == b
    keys = {k: {r.reaction_smiles for r in v} for k, v in a.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["valid"]
    assert sum(map(len, keys.values())) == len(reactions)


@pytest.mark.slow
def test_tiny_model_learns_held_out_reactions(synthetic_data, tmp_path):
    """A 0.67M-parameter transformer (preset ``tiny``, 3000 steps: ~21 min on 2 busy CPU cores)
    predicts unseen combinations of known building blocks; chance is far below 1%, as the test
    products are not in the training set."""
    from reaction_nmt.cli import main

    run = tmp_path / "run"
    argv = ["train", "--data", str(synthetic_data), "--out", str(run), "--preset", "tiny"]
    assert main([*argv, "--threads", "2", *LEARN]) == 0
    result = tmp_path / "eval.json"
    model = sorted(run.glob("model_step_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))[-1]
    argv = ["evaluate", "--model", str(model), "--data", str(synthetic_data), "--split", "test"]
    assert main([*argv, "--beam-size", "3", "--n-best", "3", "--json", str(result)]) == 0
    scored = json.loads(result.read_text())
    train_targets = set((synthetic_data / "tgt-train.txt").read_text().splitlines())
    test_targets = (synthetic_data / "tgt-test.txt").read_text().splitlines()
    assert sum(t in train_targets for t in test_targets) < 0.05 * len(test_targets)
    # measured 70.6% top-1 / 88.7% top-3 on 462 held-out reactions (issue 5 asks for ~80% top-1;
    # not reached yet at this budget)
    assert scored["top_k"]["1"] >= 0.6 and scored["top_k"]["3"] >= 0.8, scored


LEARN = ["-train_steps", "3000", "-valid_steps", "3000", "-save_checkpoint_steps", "3000"]
