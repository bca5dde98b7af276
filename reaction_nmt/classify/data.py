"""Reactions with their class (the ten USPTO-50k classes of Schneider et al. 2016), as tokens.

Two sources:

* the tokenised Liu split (``src-{split}.txt[.gz]``: a ``<RX_k>`` class token and the product,
  with the matching ``tgt-{split}.txt[.gz]``: the reactants);
* a CSV with a ``class`` column and reactant/product columns (``reactants_can`` and
  ``prod_smiles`` by default, as in MHN's ``USPTO_50k_MHN_prepro.csv.gz``), optionally a
  ``split`` column.

A reaction is the token sequence of ``reactants>>product`` (:func:`reaction_tokens`: the
project's SMILES tokenizer). Classes are 1-based in the files and 0-based in tensors. Every
problem is an error naming the file and line: an empty file, a line without a class, a class
outside 1..``num_classes``, missing reactants or product, a SMILES the tokenizer cannot split.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from reaction_nmt.formats import DataFormatError, open_text
from reaction_nmt.tokenize import TokenizationError, tokenize

__all__ = [
    "NUM_CLASSES",
    "ClassifiedReaction",
    "Vocabulary",
    "check_reaction",
    "read_csv_classes",
    "read_liu_classes",
    "reaction_tokens",
    "read_split",
]

NUM_CLASSES = 10
_RX = re.compile(r"^<RX_(\d+)>$")
PAD, UNK = "<pad>", "<unk>"


@dataclass(frozen=True)
class ClassifiedReaction:
    where: str
    reactants: str
    product: str
    label: int  # 0-based

    @property
    def smiles(self) -> str:
        return f"{self.reactants}>>{self.product}"


def reaction_tokens(reactants: str, product: str) -> list[str]:
    """Tokens of ``reactants>>product`` (``>>`` is one token)."""
    return [*tokenize(reactants), ">>", *tokenize(product)]


def _check_label(raw: str, where: str, num_classes: int) -> int:
    try:
        k = int(raw)
    except ValueError:
        raise DataFormatError(f"{where}: reaction class {raw!r} is not a number") from None
    if not 1 <= k <= num_classes:
        raise DataFormatError(
            f"{where}: unknown reaction class {k} (the classes are 1..{num_classes})"
        )
    return k - 1


def check_reaction(r: ClassifiedReaction, *, parse: bool = False) -> ClassifiedReaction:
    """``r`` if it has reactants and a product the tokenizer splits (and, with ``parse``, that
    RDKit reads); else a :class:`DataFormatError` naming it."""
    if not r.reactants or not r.product:
        raise DataFormatError(f"{r.where}: the reaction has no reactants or no product")
    try:
        reaction_tokens(r.reactants, r.product)
    except TokenizationError as err:
        raise DataFormatError(f"{r.where}: {err}") from None
    if parse:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        for part in (r.reactants, r.product):
            if Chem.MolFromSmiles(part) is None:
                raise DataFormatError(f"{r.where}: {part!r} is not a valid SMILES")
    return r


def read_liu_classes(src: Path, num_classes: int = NUM_CLASSES) -> list[ClassifiedReaction]:
    """The reactions of a Liu ``src-*.txt[.gz]`` file and its ``tgt-`` partner."""
    src = Path(src)
    tgt = src.with_name(src.name.replace("src-", "tgt-", 1))
    if not src.is_file():
        raise DataFormatError(f"{src} does not exist")
    if tgt == src or not tgt.is_file():
        raise DataFormatError(f"{src}: the matching tgt- file {tgt.name} does not exist")
    out = []
    with open_text(src) as fs, open_text(tgt) as ft:
        for i, (s, t) in enumerate(zip(fs, ft, strict=False), 1):
            where = f"{src.name}:{i}"
            tokens = s.split()
            m = _RX.match(tokens[0]) if tokens else None
            if m is None:
                raise DataFormatError(f"{where}: no <RX_k> reaction-class token at the start")
            label = _check_label(m.group(1), where, num_classes)
            out.append(check_reaction(ClassifiedReaction(where, "".join(t.split()), "".join(tokens[1:]),
                                                   label)))  # fmt: skip
        if fs.readline() or ft.readline():
            raise DataFormatError(f"{src} and {tgt.name} have different numbers of lines")
    if not out:
        raise DataFormatError(f"{src} is empty")
    return out


def read_csv_classes(
    path: Path,
    *,
    split: str | None = None,
    reactants: str = "reactants_can",
    product: str = "prod_smiles",
    label: str = "class",
    num_classes: int = NUM_CLASSES,
) -> list[ClassifiedReaction]:
    """The reactions of a CSV (``split``: only the rows whose ``split`` column has it)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path} does not exist")
    out = []
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if not cols:
            raise DataFormatError(f"{path} is empty")
        missing = [c for c in (reactants, product, label) if c not in cols]
        if split is not None and "split" not in cols:
            missing.append("split")
        if missing:
            raise DataFormatError(f"{path}: no column {', '.join(map(repr, missing))}")
        for i, row in enumerate(reader, 2):
            if split is not None and row["split"] != split:
                continue
            where = f"{path.name}:{i}"
            if not (row.get(label) or "").strip():
                raise DataFormatError(f"{where}: the reaction has no class")
            k = _check_label(row[label].strip(), where, num_classes)
            out.append(check_reaction(ClassifiedReaction(where, row[reactants].strip(),
                                                   row[product].strip(), k)))  # fmt: skip
    if not out:
        raise DataFormatError(f"{path} has no reaction" + (f" in split {split!r}" if split else ""))
    return out


def read_split(data: Path, split: str, num_classes: int = NUM_CLASSES) -> list[ClassifiedReaction]:
    """``split`` of a Liu folder (``src-<split>.txt[.gz]``) or of a CSV with a split column."""
    data = Path(data)
    if data.is_dir():
        for name in (f"src-{split}.txt", f"src-{split}.txt.gz"):
            if (data / name).is_file():
                return read_liu_classes(data / name, num_classes)
        raise DataFormatError(f"{data} has no src-{split}.txt[.gz]")
    return read_csv_classes(data, split=split, num_classes=num_classes)


@dataclass(frozen=True)
class Vocabulary:
    """Token list; index 0 is padding, 1 unknown."""

    tokens: tuple[str, ...]

    @classmethod
    def build(cls, reactions: Iterable[ClassifiedReaction], min_count: int = 1) -> Vocabulary:
        counts = Counter(t for r in reactions for t in reaction_tokens(r.reactants, r.product))
        kept = sorted(t for t, c in counts.items() if c >= min_count)
        return cls((PAD, UNK, *kept))

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """Token ids (unknown tokens -> 1), cut at ``max_len``."""
        return [self.index.get(t, 1) for t in tokens[:max_len]]

    def __len__(self) -> int:
        return len(self.tokens)
