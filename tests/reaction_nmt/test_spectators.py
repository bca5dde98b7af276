"""Spectator molecules in sources: the pool, adding them, prepare --spectators, add-spectators."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from reaction_nmt.chem import canonicalize
from reaction_nmt.cli import main
from reaction_nmt.formats import split_files
from reaction_nmt.prepare import PrepareError, prepare_corpora, read_spectator_pool
from reaction_nmt.robustness import write_spectator_split
from reaction_nmt.spectators import SpectatorError, SpectatorPool, add_spectators, pool_from_sources
from reaction_nmt.tokenize import detokenize
from tests.reaction_nmt.conftest import MAPPED_MIT, write_lines


def _molecules(smiles: str) -> Counter:
    return Counter(canonicalize(m) for m in smiles.split(".") if m)


def test_pool_keeps_whole_sets_with_their_frequency():
    pool = pool_from_sources(
        ["CC>O.[Na+].[Cl-]", "CC>O.[Na+].[Cl-]", "CC>ClCCl", "CC>", "CCO"], name="x"
    )
    assert pool.reactions == 5 and pool.without == 2
    assert pool.sets.count(tuple(sorted(("O", "[Na+]", "[Cl-]")))) == 2
    rng = random.Random(0)
    draws = Counter(pool.draw(rng) for _ in range(3000))
    salt, solvent = tuple(sorted(("O", "[Na+]", "[Cl-]"))), ("ClCCl",)
    assert set(draws) == {salt, solvent}
    assert 1.7 < draws[salt] / draws[solvent] < 2.3  # drawn by frequency, 2:1
    summary = pool.summary()
    assert summary["spectators_per_reaction"] == {"0": 2, "1": 1, "3": 2}
    assert summary["distinct_molecules"] == 4


def test_draw_never_gives_a_set_holding_the_product():
    pool = pool_from_sources(["C>CCO", "C>O", "C>CCO.O"], name="x")
    rng = random.Random(1)
    assert all("CCO" not in pool.draw(rng, avoid=["CCO"]) for _ in range(200))
    with pytest.raises(SpectatorError, match="every spectator set"):
        pool_from_sources(["C>CCO"], name="only").draw(rng, avoid=["CCO"])


def test_a_pool_without_spectators_is_refused_naming_it():
    with pytest.raises(SpectatorError, match="clean.txt: no reaction with a spectator"):
        pool_from_sources(["CC>", "CCO"], name="clean.txt")


def test_add_spectators_mixed_and_separated():
    src = "CC(=O)Cl.NCC"
    out = add_spectators(src, ["O", "CCN(CC)CC"])
    assert out == canonicalize("CC(=O)Cl.NCC.O.CCN(CC)CC")  # canonical: what predict feeds
    rng = random.Random(3)
    shuffled = {add_spectators(src, ["O", "CCN(CC)CC"], rng=rng) for _ in range(20)}
    assert len(shuffled) > 5  # random atom and molecule orders...
    assert {canonicalize(s) for s in shuffled} == {out}  # ...of the same molecules
    sep = add_spectators("CC(=O)Cl.NCC>O", ["ClCCl"])
    reactants, reagents = sep.split(">")
    assert _molecules(reactants) == _molecules("CC(=O)Cl.NCC")
    assert _molecules(reagents) == _molecules("O.ClCCl")


def test_read_pool_from_mapped_reactions(mapped_dir):
    pool = read_spectator_pool(mapped_dir / "test.txt.gz")  # USPTO-MIT style, mapped products
    # first reaction: dichloromethane; second: the potassium carbonate
    assert sorted(pool.sets) == sorted(
        [("ClCCl",), tuple(sorted(("[K+]", "[K+]", "O=C([O-])[O-]")))]
    )
    assert pool.reactions == 2 and pool.without == 0


def test_prepare_adds_spectator_copies_to_train_only(mapped_dir, tmp_path):
    pool = SpectatorPool((("ClCCl",),), "p", 1, 0)
    files = split_files("mapped", mapped_dir)
    files["valid"] = files["test"]
    out = tmp_path / "o"
    m = prepare_corpora(files, out, fmt="mapped", spectators=pool, spectator_copies=2)
    train_src = (out / "src-train.txt").read_text().splitlines()
    train_tgt = (out / "tgt-train.txt").read_text().splitlines()
    written = m["splits"]["train"]["written"]
    assert len(train_src) == len(train_tgt) == 3 * written == m["splits"]["train"]["lines"]
    for i in range(written):
        clean, canon, shuffled = (detokenize(s) for s in train_src[3 * i : 3 * i + 3])
        assert len({train_tgt[3 * i + k] for k in range(3)}) == 1  # same target
        assert "ClCCl" not in clean and canon == canonicalize(clean + ".ClCCl")
        assert canonicalize(shuffled) == canon
    valid = [detokenize(s) for s in (out / "src-valid.txt").read_text().splitlines()]
    assert all("ClCCl" not in s for s in valid[1:])  # the first test reaction had its own DCM
    assert len(valid) == m["splits"]["valid"]["written"]
    assert m["spectators"]["copies"] == 2 and m["spectators"]["pool"]["source"] == "p"
    with pytest.raises(PrepareError, match="--spectator-copies needs --spectators"):
        prepare_corpora(files, tmp_path / "o2", fmt="mapped", spectator_copies=1)


def _prepared(tmp_path, liu_smi_dir):
    data = tmp_path / "data"
    assert (
        main(["prepare", "--format", "liu-smi", "--data", str(liu_smi_dir), "--out", str(data)])
        == 0
    )
    return data


def test_spectator_split_is_seeded_and_keeps_targets(tmp_path, liu_smi_dir):
    data = _prepared(tmp_path, liu_smi_dir)
    pool = pool_from_sources(["C>O.[Na+].[Cl-]", "C>CN(C)C=O", "C>ClCCl"], name="p")
    m1 = write_spectator_split(data, tmp_path / "a", pool=pool, split="valid", seed=4)
    write_spectator_split(data, tmp_path / "b", pool=pool, split="valid", seed=4)
    a = (tmp_path / "a" / "src-valid.txt").read_text()
    assert a == (tmp_path / "b" / "src-valid.txt").read_text()
    assert (tmp_path / "a" / "tgt-valid.txt").read_text() == (data / "tgt-valid.txt").read_text()
    clean = [detokenize(s) for s in (data / "src-valid.txt").read_text().splitlines()]
    spec = [detokenize(s) for s in a.splitlines()]
    for c, s in zip(clean, spec, strict=True):
        added = _molecules(s) - _molecules(c)
        assert tuple(sorted(added.elements())) in pool.sets
        assert s == canonicalize(s)
    assert m1["splits"]["valid"]["written"] == len(clean)
    with pytest.raises(PrepareError, match="already holds a corpus"):
        write_spectator_split(data, tmp_path / "a", pool=pool, split="valid", seed=4)


def test_add_spectators_cli(tmp_path, liu_smi_dir, capsys):
    data = _prepared(tmp_path, liu_smi_dir)
    pool_file = write_lines(tmp_path / "pool.txt", MAPPED_MIT)
    out = tmp_path / "spec"
    argv = ["add-spectators", "--data", str(data), "--split", "valid", "--spectators"]
    assert main(argv + [str(pool_file), "--out", str(out)]) == 0
    assert "spectator molecules added on average" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spectators"]["pool"]["with_spectators"] == 2
    # a pool file with no spectator: one line, exit 2, nothing written
    clean = write_lines(tmp_path / "clean.txt", ["[CH3:1][OH:2]>>[CH3:1][O:2]C"])
    assert main(argv + [str(clean), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clean.txt: no reaction with a spectator" in err
    assert not (tmp_path / "x").exists()
