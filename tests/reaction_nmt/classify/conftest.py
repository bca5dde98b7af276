"""Tiny class-labelled reaction files in both supported layouts."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from reaction_nmt.tokenize import tokenize

# two classes told apart by chemistry: amide couplings (class 2) and Boc removals (class 6)
AMIDES = [
    ("CC(=O)Cl.NCC", "CCNC(C)=O"),
    ("O=C(Cl)c1ccccc1.NC", "CNC(=O)c1ccccc1"),
    ("CCC(=O)Cl.NCCO", "CCC(=O)NCCO"),
    ("CC(=O)O.Nc1ccccc1", "CC(=O)Nc1ccccc1"),
]
BOCS = [("CC(C)(C)OC(=O)NCC", "NCC"), ("CC(C)(C)OC(=O)N1CCCC1", "C1CCNC1"),
        ("CC(C)(C)OC(=O)NCc1ccccc1", "NCc1ccccc1"), ("CC(C)(C)OC(=O)NCCO", "NCCO")]  # fmt: skip


def rows(n: int) -> list[tuple[str, str, int]]:
    out = []
    for i in range(n):
        r, p = (AMIDES if i % 2 == 0 else BOCS)[(i // 2) % 4]
        out.append((r, p, 2 if i % 2 == 0 else 6))
    return out


def write_liu(folder: Path, split: str, data: list[tuple[str, str, int]], gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    src = "".join(f"<RX_{k}> {' '.join(tokenize(p))}\n" for _, p, k in data)
    tgt = "".join(f"{' '.join(tokenize(r))}\n" for r, _, _ in data)
    for name, text in ((f"src-{split}.txt", src), (f"tgt-{split}.txt", tgt)):
        if gz:
            with gzip.open(folder / f"{name}.gz", "wt") as fh:
                fh.write(text)
        else:
            (folder / name).write_text(text)


@pytest.fixture
def liu_dir(tmp_path) -> Path:
    folder = tmp_path / "liu"
    write_liu(folder, "train", rows(48))
    write_liu(folder, "valid", rows(8), gz=False)
    write_liu(folder, "test", rows(8))
    return folder
