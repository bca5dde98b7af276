import pytest

from reaction_nmt.cli import main
from reaction_nmt.tokenize import TokenizationError, detokenize, tokenize


@pytest.mark.parametrize(
    "smiles, tokens",
    [
        ("CC(=O)Cl", ["C", "C", "(", "=", "O", ")", "Cl"]),
        ("c1ccc(Br)cc1", ["c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1"]),
        ("[NH4+].[Cl-]", ["[NH4+]", ".", "[Cl-]"]),
        ("C%12CC%12", ["C", "%12", "C", "C", "%12"]),
        (
            "C[C@@H](N)C(=O)O>>CN",
            ["C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O", ">", ">", "C", "N"],
        ),
        ("F/C=C\\F", ["F", "/", "C", "=", "C", "\\", "F"]),
    ],
)
def test_known_splits(smiles, tokens):
    assert tokenize(smiles) == tokens
    assert detokenize(tokens) == smiles
    assert detokenize(" ".join(tokens)) == smiles


def test_round_trip_qm9_smiles(qm9_small):
    for smi in qm9_small.smiles:
        assert detokenize(tokenize(smi)) == smi


@pytest.mark.parametrize("bad", ["", " CCO", "CC&O", "C C"])
def test_untokenizable_named(bad):
    with pytest.raises(TokenizationError, match="cannot tokenize SMILES"):
        tokenize(bad)


def test_cli(capsys):
    assert main(["tokenize", "CCO", "C&"]) == 1
    out, err = capsys.readouterr()
    assert out == "C C O\n" and "'C&'" in err
