"""SMILES tokenisation as in the Molecular Transformer (Schwaller et al., ACS Cent. Sci. 2019).

Pure functions: ``tokenize`` splits a SMILES or reaction SMILES into atoms (bracket atoms whole,
two-letter elements Br/Cl kept together), bonds, branches, ring closures (``%nn`` whole) and
the ``.``/``>`` separators; ``detokenize`` joins them back exactly.
"""

from __future__ import annotations

import re

__all__ = ["SMILES_REGEX", "TokenizationError", "tokenize", "detokenize"]

SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)


class TokenizationError(ValueError):
    """A SMILES contains characters the tokenizer cannot account for; names the SMILES."""


def tokenize(smiles: str) -> list[str]:
    """Split ``smiles`` into tokens; raises if the tokens would not join back to the input."""
    if not smiles or smiles != smiles.strip():
        raise TokenizationError(f"cannot tokenize SMILES {smiles!r}: empty or surrounded by spaces")
    tokens = SMILES_REGEX.findall(smiles)
    if "".join(tokens) != smiles:
        pos, covered = 0, 0
        for tok in SMILES_REGEX.finditer(smiles):
            if tok.start() != covered:
                break
            covered = tok.end()
        pos = covered
        raise TokenizationError(
            f"cannot tokenize SMILES {smiles!r}: unexpected {smiles[pos]!r} at position {pos}"
        )
    return tokens


def detokenize(tokens: list[str] | str) -> str:
    """Join tokens (a list, or a space-separated string) back into a SMILES."""
    if isinstance(tokens, str):
        tokens = tokens.split()
    return "".join(tokens)
