import json

import pytest

from reaction_nmt.formats import DataFormatError, Record, read_records, split_files
from reaction_nmt.prepare import (
    PrepareError,
    RejectedReaction,
    edit_atoms,
    forward_example,
    prepare_corpora,
    sha256,
)
from reaction_nmt.tokenize import detokenize


def _lines(path):
    return [detokenize(line) for line in path.read_text().splitlines()]


def test_edit_atoms_both_uspto_styles():
    assert edit_atoms("5;;2-4-1.0;2-5-1.0") == {2, 4, 5}
    assert edit_atoms("29;;29-30-2.0,30-31-1.0;29-30-3.0") == {29, 30, 31}
    assert edit_atoms("15-6-1.0;6-8-0.0") == {6, 8, 15}
    assert edit_atoms("") == set()


def test_mixed_and_separated_from_mapped_15k(mapped_dir):
    rec = next(iter(read_records("mapped", mapped_dir / "train.txt")))
    src, tgt = forward_example(rec, mode="mixed")
    assert tgt == "CCNC(C)=O"
    assert set(src.split(".")) == {"CC(=O)Cl", "CCN", "CCN(CC)CC"}
    src, tgt = forward_example(rec, mode="separated")
    assert src == "CC(=O)Cl.CCN>CCN(CC)CC"


def test_separated_by_product_atom_maps_mit(mapped_dir):
    recs = list(read_records("mapped", mapped_dir / "test.txt.gz"))
    src, tgt = forward_example(recs[0], mode="separated")
    assert (src, tgt) == ("CC(=O)Cl.CCN>ClCCl", "CCNC(C)=O")
    src, tgt = forward_example(recs[1], mode="separated")
    reactants, reagents = src.split(">")
    assert set(reactants.split(".")) == {"CI", "Oc1ccccc1"}
    assert "[K+]" in reagents and tgt == "COc1ccccc1"


def test_molecules_on_both_sides_removed_from_product(mapped_dir):
    rec = list(read_records("mapped", mapped_dir / "train.txt"))[1]
    assert forward_example(rec)[1] == "COC(C)=O"
    only_spectators = Record("x:1", reactants="CCO.[Na+]", products="[Na+].OCC")
    with pytest.raises(RejectedReaction, match="every product molecule") as err:
        forward_example(only_spectators)
    assert err.value.kind == "empty_product"


def test_separated_needs_maps_or_reagent_field():
    with pytest.raises(RejectedReaction, match="needs atom maps"):
        forward_example(
            Record("f:3", reactants="CC(=O)O.OC", products="COC(C)=O"), mode="separated"
        )
    rec = Record("f:4", reactants="CC(=O)O.OC", reagents="O=S(=O)(O)O", products="COC(C)=O")
    assert forward_example(rec, mode="separated")[0] == "CC(=O)O.CO>O=S(=O)(O)O"


def test_prepare_mapped_counts_broken_lines(mapped_dir, tmp_path):
    out = tmp_path / "out"
    m = prepare_corpora(split_files("mapped", mapped_dir), out, fmt="mapped", mode="separated")
    train = m["splits"]["train"]
    assert (train["read"], train["written"], train["rejected"]) == (4, 2, 2)
    assert train["rejected_by_reason"] == {"format": 1, "invalid_smiles": 1}
    rejected = (out / "rejected-train.tsv").read_text()
    assert "train.txt:3" in rejected and "'[CH3:1][C:2](=[O:3])[XX:4]'" in rejected
    assert "train.txt:4" in rejected
    assert _lines(out / "tgt-train.txt") == ["CCNC(C)=O", "COC(C)=O"]
    assert m["splits"]["test"]["written"] == 2
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    assert m["files"]["src-train.txt"] == {"sha256": sha256(out / "src-train.txt"), "lines": 2}
    assert m["inputs"]["test"]["sha256"] == sha256(mapped_dir / "test.txt.gz")


def test_prepare_liu_smi_forward_direction(liu_smi_dir, tmp_path):
    m = prepare_corpora(split_files("liu-smi", liu_smi_dir), tmp_path / "o", fmt="liu-smi")
    assert m["splits"]["train"]["rejected_by_reason"] == {"format": 1, "invalid_smiles": 1}
    assert _lines(tmp_path / "o" / "tgt-train.txt")[2] == "C[C@@H](N)C(=O)O"  # stereo kept
    assert _lines(tmp_path / "o" / "src-train.txt")[2] == "C[C@@H](NC(=O)OCc1ccccc1)C(=O)O"
    assert m["splits"]["valid"] == {
        "read": 2, "written": 2, "lines": 2, "rejected": 0, "rejected_by_reason": {}
    }  # fmt: skip


def test_prepare_liu_tokenized_reverses_and_drops_class(liu_tok_dir, tmp_path):
    m = prepare_corpora(
        split_files("liu-tokenized", liu_tok_dir), tmp_path / "o", fmt="liu-tokenized"
    )
    assert m["splits"]["train"]["written"] == 2
    assert m["splits"]["train"]["rejected_by_reason"] == {"invalid_smiles": 1}
    assert _lines(tmp_path / "o" / "tgt-train.txt")[0] == "COC(=O)c1cccc(-c2nc3cccnc3[nH]2)c1"
    assert "<RX_" not in (tmp_path / "o" / "tgt-train.txt").read_text()


def test_prepare_liu_tokenized_needs_matching_tgt(liu_tok_dir, tmp_path):
    (liu_tok_dir / "tgt-train.txt.gz").unlink()
    with pytest.raises(DataFormatError, match="tgt-train.txt.gz does not exist"):
        prepare_corpora(
            split_files("liu-tokenized", liu_tok_dir), tmp_path / "o", fmt="liu-tokenized"
        )


def test_prepare_csv_with_split_column_and_augmentation(csv_file, tmp_path):
    inputs = {"train": csv_file, "test": csv_file}
    m = prepare_corpora(
        inputs, tmp_path / "o", fmt="csv", augment=2, csv_options={"split_column": "split"}
    )
    assert m["splits"]["train"]["written"] == 2 and m["splits"]["train"]["lines"] == 6
    assert m["splits"]["test"]["rejected_by_reason"] == {"invalid_smiles": 1}
    src = _lines(tmp_path / "o" / "src-train.txt")
    from reaction_nmt.chem import canonicalize

    assert {canonicalize(s) for s in src[:3]} == {canonicalize("CC(=O)O.OCC.OS(=O)(=O)O")}
    assert len(set(src[:3])) > 1  # augmented spellings differ
    assert _lines(tmp_path / "o" / "tgt-train.txt")[:3] == ["CCOC(C)=O"] * 3


def test_prepare_csv_reactant_and_product_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,reactants_can,prod_smiles\n1,CC(=O)Cl.NCC,CCNC(C)=O\n2,,C\n")
    opts = {"reactants_column": "reactants_can", "product_column": "prod_smiles"}
    m = prepare_corpora({"test": path}, tmp_path / "o", fmt="csv", csv_options=opts)
    assert m["splits"]["test"]["written"] == 1 and m["splits"]["test"]["rejected"] == 1
    with pytest.raises(DataFormatError, match="no reaction-SMILES column"):
        list(read_records("csv", tmp_path / "r.csv"))


def test_split_without_usable_reaction_is_an_error(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("garbage\nmore garbage\n")
    with pytest.raises(PrepareError, match="no usable reaction in split 'train'"):
        prepare_corpora({"train": path}, tmp_path / "o", fmt="mapped")


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="nope.txt does not exist"):
        read_records("mapped", tmp_path / "nope.txt")
    with pytest.raises(DataFormatError, match="has no liu-smi files"):
        split_files("liu-smi", tmp_path)


def test_csv_reaction_cell_with_a_space_is_rejected_not_cut(tmp_path):
    """'A>>B O' used to lose ' O' silently (the rest of the cell was read as edits); a
    CXSMILES extension after the space is fragment grouping and may go."""
    csv = tmp_path / "r.csv"
    csv.write_text(
        "reaction\n"
        "CC(=O)Cl.NCC>>CC(=O)NCC O\n"
        "CC(=O)Cl.NCC>>CC(=O)NCC |f:0.1|\n"
        "CC(=O)Cl.N CC>>CC(=O)NCC\n"
    )
    records = list(read_records("csv", csv))
    assert "space inside the reaction SMILES" in records[0].error
    assert records[1].error is None and records[1].products == "CC(=O)NCC"
    assert records[2].error  # no reaction without a space in it
    both = tmp_path / "b.csv"
    both.write_text("reactants,product\nCC(=O)Cl.NCC,CC(=O)NCC O\n")
    rec = next(iter(read_records("csv", both, reactants_column="reactants",
                                 product_column="product")))  # fmt: skip
    assert "whitespace inside a SMILES" in rec.error


def test_tsv_is_read_tab_separated(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_text("reaction\tsplit\nCC(=O)Cl.NCC>>CC(=O)NCC\ttrain\nCCO>>CC=O\ttest\n")
    records = list(read_records("csv", tsv, split_column="split", split="train"))
    assert [r.products for r in records] == ["CC(=O)NCC"]
