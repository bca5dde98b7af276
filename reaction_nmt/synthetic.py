"""Synthetic reactions from RDKit reaction templates over small building blocks.

Every reaction is a real RDKit transformation (amide coupling, esterification, Suzuki
coupling, reductive amination, N-alkylation, Boc deprotection, ...) of commercially common
small building blocks, written as ``reactants>reagents>product`` reaction SMILES. The set is
small and regular enough that a tiny transformer learns it on a CPU in a couple of minutes,
which is what the package's learning test checks (new combinations of known building blocks
are held out).
"""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import dataclass
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import AllChem

__all__ = ["TEMPLATES", "Template", "SyntheticReaction", "generate", "split", "write_csv"]

# Substituents written so that a functional group appended to the string bonds to the last atom.
# They differ in kind, not only in chain or ring length (counting is what tiny models learn last).
ALKYL = ["C", "CC", "CC(C)", "CC(C)(C)", "C1CC1", "C1CCCCC1", "COCC", "FC(F)(F)C", "C=CC",
         "N#CC", "C1CCOCC1", "c1ccccc1C", "c1ccoc1C", "CSCC", "C#CC", "CN(C)CC", "c1ccncc1C",
         "c1ccsc1C", "COc1ccc(cc1)C", "Fc1ccc(cc1)C", "CN1CCC(CC1)", "c1ccc2ccccc2c1C"]  # fmt: skip
ARYL = ["c1ccccc1", "Cc1ccc(cc1)", "COc1ccc(cc1)", "Fc1ccc(cc1)", "Clc1ccc(cc1)", "c1ccncc1",
        "c1ccsc1", "N#Cc1ccc(cc1)", "CC(=O)c1ccc(cc1)", "FC(F)(F)c1ccc(cc1)", "c1ccc2ccccc2c1",
        "Cc1ccccc1", "COc1cccc(c1)", "CSc1ccc(cc1)"]  # fmt: skip


def _blocks(groups: list[str], suffix: str) -> tuple[str, ...]:
    return tuple(Chem.MolToSmiles(Chem.MolFromSmiles(g + suffix)) for g in groups)


ACIDS = _blocks(ALKYL + ARYL, "C(=O)O")
AMINES = _blocks(ALKYL, "N")
ALCOHOLS = _blocks(ALKYL, "O")
ALDEHYDES = _blocks(ALKYL + ARYL, "C=O")
ALKYL_BROMIDES = _blocks(ALKYL, "Br")
ARYL_BROMIDES = _blocks(ARYL, "Br")
BORONIC_ACIDS = _blocks(ARYL, "B(O)O")
BOC_AMINES = _blocks(ALKYL, "NC(=O)OC(C)(C)C")  # deprotection gives back AMINES
PRIMARY_OR_SECONDARY = "[N;H2,H1;!$(NC=O);!$(N[a]):{n}]"


@dataclass(frozen=True)
class Template:
    """A named RDKit reaction SMARTS, its building-block lists and fixed reagents."""

    name: str
    smarts: str
    blocks: tuple[tuple[str, ...], ...]
    reagents: str = ""


TEMPLATES: tuple[Template, ...] = (
    Template(
        "amide_coupling",
        f"[C:1](=[O:2])[OH].{PRIMARY_OR_SECONDARY.format(n=3)}>>[C:1](=[O:2])[N:3]",
        (ACIDS, AMINES),
        "CCN(C(C)C)C(C)C.CN(C)C=O",
    ),
    Template(
        "esterification",
        "[C:1](=[O:2])[OH].[OH][CX4:3]>>[C:1](=[O:2])O[C:3]",
        (ACIDS, ALCOHOLS),
        "O=S(=O)(O)O",
    ),
    Template(
        "suzuki_coupling",
        "[c:1][Br].[c:2]B(O)O>>[c:1]-[c:2]",
        (ARYL_BROMIDES, BORONIC_ACIDS),
        "O=C([O-])[O-].[Na+].[Na+].[Pd]",
    ),
    Template(
        "reductive_amination",
        f"[CH1:1](=O)[#6:4].{PRIMARY_OR_SECONDARY.format(n=2)}>>[CH2:1]([#6:4])[N:2]",
        (ALDEHYDES, AMINES),
        "CC(=O)O[BH-](OC(C)=O)OC(C)=O.[Na+]",
    ),
    Template(
        "n_alkylation",
        f"[CX4;!$(C[Br][Br]):1][Br].{PRIMARY_OR_SECONDARY.format(n=2)}>>[C:1][N:2]",
        (ALKYL_BROMIDES, AMINES),
        "O=C([O-])[O-].[K+].[K+]",
    ),
    Template(
        "boc_deprotection",
        "[N:1]C(=O)OC(C)(C)C>>[N:1]",
        (BOC_AMINES,),
        "O=C(O)C(F)(F)F",
    ),
)


@dataclass(frozen=True)
class SyntheticReaction:
    template: str
    reactants: str
    reagents: str
    product: str

    @property
    def reaction_smiles(self) -> str:
        return f"{self.reactants}>{self.reagents}>{self.product}"


def _run(template: Template, reactants: tuple[str, ...]) -> str | None:
    rxn = AllChem.ReactionFromSmarts(template.smarts)
    mols = [Chem.MolFromSmiles(s) for s in reactants]
    products = set()
    for outcome in rxn.RunReactants(mols):
        mol = outcome[0]
        try:
            Chem.SanitizeMol(mol)
        except Exception:  # noqa: BLE001 - RDKit raises several sanitisation errors
            continue
        products.add(Chem.MolToSmiles(mol))
    # only unambiguous outcomes: one product site, so the task has one right answer
    return products.pop() if len(products) == 1 else None


def generate(*, templates: tuple[Template, ...] = TEMPLATES) -> list[SyntheticReaction]:
    """Every unambiguous reaction of every template over its building blocks (canonical SMILES)."""
    out = []
    for template in templates:
        for combo in itertools.product(*template.blocks):
            product = _run(template, combo)
            if product is None:
                continue
            reactants = Chem.MolToSmiles(Chem.MolFromSmiles(".".join(combo)))
            out.append(SyntheticReaction(template.name, reactants, template.reagents, product))
    return out


def split(
    reactions: list[SyntheticReaction], *, valid: float = 0.1, test: float = 0.15, seed: int = 0
) -> dict[str, list[SyntheticReaction]]:
    """Random train/valid/test split of the reactions (held-out = unseen combinations)."""
    shuffled = list(reactions)
    random.Random(seed).shuffle(shuffled)
    n_test, n_valid = round(len(shuffled) * test), round(len(shuffled) * valid)
    return {
        "train": shuffled[n_test + n_valid :],
        "valid": shuffled[n_test : n_test + n_valid],
        "test": shuffled[:n_test],
    }


def write_csv(reactions: list[SyntheticReaction], path: Path) -> Path:
    """CSV with ``rxn_smiles`` and ``template`` columns (readable by ``prepare --format csv``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rxn_smiles", "template"])
        for r in reactions:
            writer.writerow([r.reaction_smiles, r.template])
    return path
