"""Round trip of the tokenizer over every SMILES of the fixture and (marked) real data."""

from pathlib import Path

import pytest

from reaction_nmt.formats import read_records, split_files
from reaction_nmt.synthetic import generate
from reaction_nmt.tokenize import detokenize, tokenize
from tests.reaction_nmt.conftest import LIU_SMI, MAPPED_15K, MAPPED_MIT

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_round_trip_fixture_reactions():
    smiles = [r.reaction_smiles for r in generate()]
    smiles += [line.split()[0] for line in MAPPED_15K[:2] + MAPPED_MIT]
    smiles += [line.replace(" ", "") for line in LIU_SMI[:3]]
    for smi in smiles:
        tokens = tokenize(smi)
        assert detokenize(tokens) == smi
        assert detokenize(" ".join(tokens)) == smi


def test_atom_mapped_bracket_atoms_are_single_tokens():
    assert tokenize("[CH3:1][C:2](=[O:3])[Cl:4]") == [
        "[CH3:1]", "[C:2]", "(", "=", "[O:3]", ")", "[Cl:4]"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"no data sets at {DATASETS}")
def test_round_trip_every_uspto_smiles():
    n = 0
    for fmt, folder in (("liu-smi", "uspto_50k/liu_split_smi"), ("mapped", "uspto_15k")):
        for path in split_files(fmt, DATASETS / folder).values():
            for r in read_records(fmt, path):
                for smi in (r.reactants, r.reagents, r.products):
                    if smi:
                        assert detokenize(tokenize(smi)) == smi
                        n += 1
    assert n > 100_000
