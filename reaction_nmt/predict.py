"""From user SMILES to a model's source line, and from its n-best output to ranked products.

Pure functions; the translation itself is :class:`reaction_nmt.backend.Translator`.
"""

from __future__ import annotations

import math

from chemprune.molecules.chem.inputs import InputFileError
from chemprune.molecules.chem.sanity import SMILES_CHARACTERS
from reaction_nmt.chem import InvalidSmilesError, canonicalize, canonicalize_or_none
from reaction_nmt.tokenize import detokenize, tokenize

__all__ = ["InvalidInput", "prepare_input", "rank_products", "read_reactions"]


class InvalidInput(ValueError):
    """A user input cannot be used; the message names the input and the molecule."""


_ALLOWED = SMILES_CHARACTERS | {">"}


def read_reactions(path, *, what: str = "reaction file", stdin=None) -> list[str]:
    """The reactions of a text file, one per line (``-``: standard input; pipes, FIFOs and
    ``/proc`` files too); blank lines and lines starting with ``#`` are skipped, UTF-8 with or
    without a byte-order mark. The file's size (``DEFAULT_LIMITS.max_file_bytes``, checked while
    reading) and line count (``max_molecules``) are limited.

    Raises:
        chemprune.molecules.chem.inputs.InputFileError: missing, empty, too large, not UTF-8, or no
            reaction in it.
    """
    from reaction_nmt.predict_io import read_text_rows

    return [row.text for row in read_text_rows(path, stdin=stdin, what=what)]


def gather_reactions(given, file) -> list[str]:
    """The reactions given as arguments, then those of ``file`` (``None``: none; see
    :func:`read_reactions`).

    Raises:
        chemprune.molecules.chem.inputs.InputFileError: an unreadable file, or no reaction at all.
    """
    reactions = list(given)
    if file is not None:
        reactions += read_reactions(file)
    if not reactions:
        raise InputFileError("no reactions given: give them as arguments or --file")
    return reactions


def prepare_input(text: str, *, mode: str | None = None) -> str:
    """Tokenised canonical source for ``text`` (``A.B`` or ``reactants>reagents``).

    ``mode`` is the training data's layout when known: a ``mixed`` model gets every molecule
    joined, a ``separated`` model gets ``reactants>reagents`` (empty reagents if none given).
    """
    text = text.strip()
    for i, ch in enumerate(text, start=1):
        if ch.isspace():
            raise InvalidInput(
                f"input {text!r}: contains whitespace (at position {i}); give each reaction as "
                "one argument with its molecules joined by '.'"
            )
        if ch not in _ALLOWED:
            raise InvalidInput(
                f"input {text!r}: character {ch!r} (U+{ord(ch):04X}) at position {i} is not a "
                "SMILES character"
            )
    sides = text.split(">")
    if not text or len(sides) > 2 or not sides[0]:
        raise InvalidInput(f"input {text!r}: expected 'SMILES' or 'reactants>reagents'")
    canonical = []
    for side in sides:
        for part in side.split(".") if side else []:
            try:
                canonicalize(part)
            except InvalidSmilesError as err:
                raise InvalidInput(f"input {text!r}: {err}") from None
        canonical.append(canonicalize(side) if side else "")
    if mode == "mixed" or (mode is None and len(canonical) == 1):
        source = canonicalize(".".join(s for s in canonical if s))
    else:
        reactants, reagents = (canonical + [""])[:2]
        source = f"{reactants}>{reagents}"
    return " ".join(tokenize(source))


def rank_products(nbest: list[tuple[str, float]]) -> list[dict]:
    """Ranked unique canonical products from (tokenised prediction, log-probability) pairs.

    A prediction RDKit cannot parse is kept (``valid: False``) so the user sees it; a second
    spelling of a product already listed is dropped.
    """
    out, seen = [], set()
    for tokens, score in nbest:
        raw = detokenize(tokens)
        canonical = canonicalize_or_none(raw) if raw else None
        key = canonical or f"invalid:{raw}"
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "rank": len(out) + 1,
                "smiles": canonical or raw,
                "valid": canonical is not None,
                "score": score,
                "probability": math.exp(score),
            }
        )
    return out
