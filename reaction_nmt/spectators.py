"""Spectator molecules (reagents, solvents, catalysts) in reaction sources, as chemists write them.

USPTO-50k's sources hold the reactant molecules only; reactions written in patents and lab
notebooks name the reagents, solvents and catalysts too. A model that never saw a spectator tries
to build it into the product. :class:`SpectatorPool` holds the spectator *sets* of real reactions
(the molecules of an atom-mapped reaction that contribute no atom to its product, e.g. USPTO-15k's
``[K+].[K+].O=C([O-])[O-].CN(C)C=O``; :func:`reaction_nmt.prepare.read_spectator_pool` reads
them from a file), drawn whole with their frequency so that salts stay
balanced and the number of spectators per reaction follows real data;
:func:`add_spectators` inserts a drawn set into a source.

Pure functions over SMILES (RDKit through :mod:`reaction_nmt.chem`); no torch.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from reaction_nmt.chem import canonicalize, randomize

__all__ = ["SpectatorError", "SpectatorPool", "add_spectators", "pool_from_sources"]


class SpectatorError(ValueError):
    """Spectators cannot be drawn or added; the message names the pool or the source."""


@dataclass(frozen=True)
class SpectatorPool:
    """The non-empty spectator sets of a reaction file, one per reaction that has any.

    ``sets`` keeps repeats, so drawing uniformly from it draws each combination with its
    frequency. ``reactions`` counts the usable reactions read, ``without`` those with no
    spectator.
    """

    sets: tuple[tuple[str, ...], ...]
    source: str
    reactions: int
    without: int

    def __post_init__(self) -> None:
        if not self.sets:
            raise SpectatorError(
                f"{self.source}: no reaction with a spectator (reagent, solvent or catalyst) "
                "molecule: it needs atom-mapped reactions whose inputs include molecules that "
                "contribute no atom to the product"
            )

    def draw(self, rng: random.Random, *, avoid: Iterable[str] = ()) -> tuple[str, ...]:
        """One spectator set, by frequency, none of whose molecules is in ``avoid`` (canonical
        SMILES, e.g. the product: a spectator that is the product would be removed from the
        target). Raises :class:`SpectatorError` when every set holds an avoided molecule."""
        avoid = set(avoid)
        for _ in range(100):
            chosen = self.sets[rng.randrange(len(self.sets))]
            if not avoid.intersection(chosen):
                return chosen
        allowed = [s for s in self.sets if not avoid.intersection(s)]
        if not allowed:
            raise SpectatorError(f"{self.source}: every spectator set holds one of {sorted(avoid)}")
        return allowed[rng.randrange(len(allowed))]

    def summary(self, top: int = 10) -> dict:
        """Counts for a manifest: sets, distinct molecules, the most frequent ones, and the
        distribution of the number of spectators per reaction (0 included)."""
        molecules = Counter(m for s in self.sets for m in s)
        sizes = Counter(len(s) for s in self.sets)
        sizes[0] = self.without
        return {
            "source": self.source,
            "reactions": self.reactions,
            "with_spectators": len(self.sets),
            "distinct_molecules": len(molecules),
            "most_common": molecules.most_common(top),
            "spectators_per_reaction": {str(k): sizes[k] for k in sorted(sizes)},
        }


def pool_from_sources(sources: Iterable[str], *, name: str) -> SpectatorPool:
    """The pool of separated sources (``reactants>spectators``, as
    :func:`reaction_nmt.prepare.forward_example` writes them in ``separated`` mode): each
    non-empty spectator side becomes one set (canonical molecules, sorted)."""
    sets, usable, without = [], 0, 0
    for source in sources:
        usable += 1
        spectators = source.split(">", 1)[1] if ">" in source else ""
        molecules = tuple(sorted(m for m in spectators.split(".") if m))
        if molecules:
            sets.append(molecules)
        else:
            without += 1
    return SpectatorPool(tuple(sets), name, usable, without)


def add_spectators(
    source: str,
    spectators: Iterable[str],
    *,
    rng: random.Random | None = None,
) -> str:
    """``source`` with ``spectators`` added.

    A ``mixed`` source (no ``>``) gets them among its molecules, a ``separated`` one
    (``reactants>reagents``) on its reagent side. Without ``rng`` the result is canonical (what
    ``reaction-nmt predict`` makes of a chemist's input); with it, every molecule is written
    from a random atom order and the molecules are shuffled (random positions).
    """
    spectators = [m for m in spectators if m]
    sides = source.split(">")
    if len(sides) > 2:
        raise SpectatorError(f"source {source!r}: expected 'SMILES' or 'reactants>reagents'")
    target = len(sides) - 1  # mixed: the only side; separated: the reagent side
    parts = [p for p in sides[target].split(".") if p] + spectators
    sides[target] = ".".join(parts)

    def render(side: str) -> str:
        if not side:
            return ""
        return randomize(side, rng=rng) if rng is not None else canonicalize(side)

    return ">".join(render(side) for side in sides)
