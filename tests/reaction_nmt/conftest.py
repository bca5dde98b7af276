"""Fixtures for reaction_nmt: small files in every supported format, made by the tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

# USPTO-15k style: mapped reactants, unmapped product, edits (lostH;gainedH;deleted;added).
MAPPED_15K = [
    # amide formation; DIPEA is a reagent (no atom in the edits)
    "[CH3:1][C:2](=[O:3])[Cl:4].[NH2:5][CH2:6][CH3:7].[CH3:8][CH2:9][N:10]([CH2:11][CH3:12])"
    "[CH2:13][CH3:14]>>CCNC(C)=O 5;;2-4-1.0;2-5-1.0",
    # esterification with a spectator that is also listed as a product
    "[CH3:1][C:2](=[O:3])[OH:4].[CH3:5][OH:6].[Na+:7].[Cl-:8]>>COC(C)=O.[Na+].[Cl-] 6;;2-4-1.0;2-6-1.0",
    # broken: unparsable reactant
    "[CH3:1][C:2](=[O:3])[XX:4]>>CC 1;;;",
    # broken: not a reaction
    "just some text",
]

# USPTO-MIT style: mapped product, bond edits only.
MAPPED_MIT = [
    "[CH3:1][C:2](=[O:3])[Cl:4].[NH2:5][CH2:6][CH3:7].[Cl:8][CH2:9][Cl:10]>>"
    "[CH3:1][C:2](=[O:3])[NH:5][CH2:6][CH3:7] 2-4-0.0;2-5-1.0",
    "[OH:1][c:2]1[cH:3][cH:4][cH:5][cH:6][cH:7]1.[CH3:8][I:9].[K+].[K+].[O-]C([O-])=O>>"
    "[CH3:8][O:1][c:2]1[cH:3][cH:4][cH:5][cH:6][cH:7]1 8-9-0.0;1-8-1.0",
]

LIU_SMI = [
    "CC(C)(C)OC(=O)NCCc1ccc(N)cc1F >> CC(C)(C)OC(=O)OC(=O)OC(C)(C)C.NCCc1ccc(N)cc1F",
    "COC(=O)c1cccc(-c2nc3cccnc3[nH]2)c1 >> COC(=O)c1cccc(C(=O)O)c1.Nc1cccnc1N",
    "C[C@@H](N)C(=O)O >> C[C@@H](NC(=O)OCc1ccccc1)C(=O)O",
    "c1ccccc1Q >> CC",  # broken product
    "no separator here",
]

LIU_TOK_SRC = [
    "<RX_1> C O C ( = O ) c 1 c c c c ( - c 2 n c 3 c c c n c 3 [ n H ] 2 ) c 1",
    "<RX_6> C C ( C ) ( C ) O C ( = O ) N C C c 1 c c c ( N ) c c 1 F",
    "<RX_2> C C ( = O ) N C 1 = C C = C ( X ) C",  # broken: X is no element
]
LIU_TOK_TGT = [
    "C O C ( = O ) c 1 c c c c ( C ( = O ) O ) c 1 . N c 1 c c c n c 1 N",
    "C C ( C ) ( C ) O C ( = O ) O C ( = O ) O C ( C ) ( C ) C . N C C c 1 c c c ( N ) c c 1 F",
    "C C ( = O ) Cl . N C 1 = C C = C ( Br ) C",
]

CSV_ROWS = [
    ("rxn_smiles", "split"),
    ("CC(=O)O.OCC>OS(=O)(=O)O>CCOC(C)=O", "train"),
    ("CC(=O)Cl.NCC>>CCNC(C)=O", "train"),
    ("Brc1ccccc1.OB(O)c1ccccc1>[Pd]>c1ccc(-c2ccccc2)cc1", "test"),
    ("CC(=O)Cl.N1CC1>>CC(=O)N1CC1CC(", "test"),  # broken product
]


def write_lines(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    text = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def mapped_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mapped"
    folder.mkdir()
    write_lines(folder / "train.txt", MAPPED_15K)
    write_lines(folder / "test.txt.gz", MAPPED_MIT, gz=True)
    return folder


@pytest.fixture
def liu_smi_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "liu_smi"
    folder.mkdir()
    write_lines(folder / "retrosynthesis-train.smi.gz", LIU_SMI, gz=True)
    write_lines(folder / "retrosynthesis-valid.smi", LIU_SMI[:2])
    return folder


@pytest.fixture
def liu_tok_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "liu_tok"
    folder.mkdir()
    write_lines(folder / "src-train.txt.gz", LIU_TOK_SRC, gz=True)
    write_lines(folder / "tgt-train.txt.gz", LIU_TOK_TGT, gz=True)
    return folder


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "reactions.csv"
    write_lines(path, [",".join(row) for row in CSV_ROWS])
    return path


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic template reactions, prepared (mixed) for OpenNMT-py."""
    from reaction_nmt import synthetic
    from reaction_nmt.prepare import prepare_corpora

    root = tmp_path_factory.mktemp("synthetic")
    parts = synthetic.split(synthetic.generate(), seed=0)
    files = {k: synthetic.write_csv(v, root / f"{k}.csv") for k, v in parts.items()}
    prepare_corpora(files, root / "data", fmt="csv")
    return root / "data"


TINY_TRAIN = ["-train_steps", "10", "-save_checkpoint_steps", "5", "-valid_steps", "5",
              "-batch_size", "512", "-report_every", "5"]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder trained 10 steps through the CLI (checkpoints at steps 5 and 10)."""
    from reaction_nmt.cli import main

    run = tmp_path_factory.mktemp("run") / "tiny"
    argv = ["train", "--data", str(synthetic_data), "--out", str(run), "--preset", "tiny"]
    assert main([*argv, "--threads", "1", *TINY_TRAIN]) == 0
    return run
