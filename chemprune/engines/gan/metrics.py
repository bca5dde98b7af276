"""Metrics of a set of generated molecules (pure functions of SMILES lists): the evaluation
protocol of the GAN benchmarks and of ``chemprune generate sample``.

``samples`` holds one entry per generated graph: its canonical SMILES, or ``None`` (or ``""``)
when it did not decode to a valid molecule (:func:`chemprune.molecules.chem.molgraph.decode`).
The protocol draws :data:`PROTOCOL_SAMPLES` (10,000) samples, seed 0, and reports:

* validity: valid / *all* samples;
* uniqueness: distinct valid / *valid* samples;
* novelty: distinct valid molecules not among the training molecules / distinct valid molecules
  (MOSES' definition: each new molecule counts once, however often it was generated; before
  issue 33 it was valid samples not in training / valid samples, MolGAN's);
* internal diversity (MOSES' IntDiv1): ``1 - mean Tanimoto similarity`` over all pairs of the
  valid samples (duplicates included, so a collapsed generator scores low), Morgan radius 2,
  2,048 bits; on at most ``max_pairs_molecules`` of them, drawn with a fixed seed;
* Frechet ChemNet Distance (Preuer et al. 2018) between the valid samples (duplicates included)
  and reference molecules, with the ChemNet weights that ``fcd_torch`` ships;
* with K generators, the coverage of each (:func:`generator_coverage`): the distinct valid
  molecules it produced, how many of those no other generator produced, and the distinct valid
  molecules of all of them together.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "PROTOCOL_SAMPLES",
    "fcd",
    "generator_coverage",
    "generation_metrics",
    "internal_diversity",
    "novelty",
    "uniqueness",
    "validity",
]


#: the number of samples the protocol scores (``chemprune generate sample -n``'s default)
PROTOCOL_SAMPLES = 10_000


def _valid(samples: Sequence[str | None]) -> list[str]:
    return [s for s in samples if s]


def validity(samples: Sequence[str | None]) -> float:
    """Valid / all samples (an empty list is an error)."""
    if not samples:
        raise ValueError("no samples to score")
    return len(_valid(samples)) / len(samples)


def uniqueness(samples: Sequence[str | None]) -> float:
    """Distinct valid / valid (0 when nothing is valid)."""
    valid = _valid(samples)
    return len(set(valid)) / len(valid) if valid else 0.0


def novelty(samples: Sequence[str | None], training: Iterable[str]) -> float:
    """Distinct valid molecules not among ``training`` (canonical SMILES) / distinct valid
    molecules (0 when none is valid)."""
    distinct = set(_valid(samples))
    if not distinct:
        return 0.0
    return len(distinct - set(training)) / len(distinct)


def internal_diversity(
    samples: Sequence[str | None], max_pairs_molecules: int = 2000, seed: int = 0
) -> float:
    """``1 - mean pairwise Tanimoto`` over the pairs of valid samples, duplicates included
    (NaN with fewer than two)."""
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    valid = _valid(samples)
    if len(valid) > max_pairs_molecules:
        valid = random.Random(seed).sample(valid, max_pairs_molecules)
    if len(valid) < 2:
        return math.nan
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in valid]
    total, pairs = 0.0, 0
    for i in range(1, len(fps)):
        sims = DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i])
        total += sum(sims)
        pairs += len(sims)
    return 1.0 - total / pairs


_FCD = None


def fcd(samples: Sequence[str | None], reference: Sequence[str]) -> float:
    """Frechet ChemNet Distance of the valid samples (duplicates included) to ``reference``
    (NaN with < 2 valid)."""
    global _FCD
    valid = _valid(samples)
    if len(valid) < 2 or len(reference) < 2:
        return math.nan
    import warnings

    with warnings.catch_warnings():  # fcd_torch's numpy/scipy deprecation notices
        warnings.simplefilter("ignore")
        if _FCD is None:
            from fcd_torch import FCD

            _FCD = FCD(device="cpu", n_jobs=1)
        return float(_FCD(list(valid), list(reference)))


def generator_coverage(
    samples: Sequence[str | None], generators: Sequence[int], num_generators: int | None = None
) -> dict[str, Any]:
    """What each of K generators contributes: ``generators[i]`` made ``samples[i]``.

    Returns ``{"generators": [row for k in 0..K-1], "union": distinct valid molecules of all}``,
    each row ``{"generator": k, "samples", "valid", "distinct": distinct valid molecules it
    made, "only": how many of those no other generator made}``. K is ``num_generators``
    (default: the largest index + 1), so a generator without a sample still gets its row.
    """
    if len(samples) != len(generators):
        raise ValueError(f"{len(samples)} samples but {len(generators)} generator indices")
    k = max(generators, default=-1) + 1 if num_generators is None else int(num_generators)
    if any(not 0 <= int(g) < k for g in generators):
        raise ValueError(f"generator indices must be in 0..{k - 1}")
    made: list[set[str]] = [set() for _ in range(k)]
    counts, valid = [0] * k, [0] * k
    for s, g in zip(samples, generators, strict=True):
        g = int(g)
        counts[g] += 1
        if s:
            valid[g] += 1
            made[g].add(s)
    makers: dict[str, int] = {}
    for mols in made:
        for m in mols:
            makers[m] = makers.get(m, 0) + 1
    rows = [
        {"generator": g, "samples": counts[g], "valid": valid[g], "distinct": len(made[g]),
         "only": sum(makers[m] == 1 for m in made[g])}
        for g in range(k)
    ]  # fmt: skip
    return {"generators": rows, "union": len(makers)}


def generation_metrics(
    samples: Sequence[str | None],
    training: Iterable[str],
    reference: Sequence[str] | None = None,
    generators: Sequence[int] | None = None,
    num_generators: int | None = None,
) -> dict[str, Any]:
    """All of the above: floats, FCD only with ``reference``, and ``"coverage"``
    (:func:`generator_coverage`) only with ``generators`` (each sample's generator)."""
    out: dict[str, Any] = {
        "samples": float(len(samples)),
        "validity": validity(samples),
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, training),
        "internal_diversity": internal_diversity(samples),
    }
    if reference is not None:
        out["fcd"] = fcd(samples, reference)
    if generators is not None:
        out["coverage"] = generator_coverage(samples, generators, num_generators)
    return out
