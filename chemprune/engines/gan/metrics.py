"""Metrics of a set of generated molecules (pure functions of SMILES lists).

``samples`` holds one entry per generated graph: its canonical SMILES, or ``None`` when it did
not decode to a valid molecule (:func:`chemprune.molecules.chem.molgraph.decode`). As MolGAN reports them:

* validity: valid / all samples;
* uniqueness: distinct valid / valid;
* novelty: valid samples whose molecule is not among the training molecules / valid;
* internal diversity (MOSES' IntDiv1): ``1 - mean Tanimoto similarity`` over all pairs of the
  valid samples (duplicates included, so a collapsed generator scores low), Morgan radius 2,
  2,048 bits; on at most ``max_pairs_molecules`` of them, drawn with a fixed seed;
* Frechet ChemNet Distance (Preuer et al. 2018) between the valid samples and reference
  molecules, with the ChemNet weights that ``fcd_torch`` ships.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

__all__ = [
    "fcd",
    "generation_metrics",
    "internal_diversity",
    "novelty",
    "uniqueness",
    "validity",
]


def _valid(samples: Sequence[str | None]) -> list[str]:
    return [s for s in samples if s]


def validity(samples: Sequence[str | None]) -> float:
    if not samples:
        raise ValueError("no samples to score")
    return len(_valid(samples)) / len(samples)


def uniqueness(samples: Sequence[str | None]) -> float:
    """Distinct valid / valid (0 when nothing is valid)."""
    valid = _valid(samples)
    return len(set(valid)) / len(valid) if valid else 0.0


def novelty(samples: Sequence[str | None], training: Iterable[str]) -> float:
    """Valid samples not among ``training`` (canonical SMILES) / valid (0 when none valid)."""
    valid = _valid(samples)
    if not valid:
        return 0.0
    seen = set(training)
    return sum(s not in seen for s in valid) / len(valid)


def internal_diversity(
    samples: Sequence[str | None], max_pairs_molecules: int = 2000, seed: int = 0
) -> float:
    """``1 - mean pairwise Tanimoto`` of the valid samples (NaN with fewer than two)."""
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
    """Frechet ChemNet Distance of the valid samples to ``reference`` (NaN with < 2 valid)."""
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


def generation_metrics(
    samples: Sequence[str | None],
    training: Iterable[str],
    reference: Sequence[str] | None = None,
) -> dict[str, float]:
    """All of the above (FCD only with ``reference``)."""
    out = {
        "samples": float(len(samples)),
        "validity": validity(samples),
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, training),
        "internal_diversity": internal_diversity(samples),
    }
    if reference is not None:
        out["fcd"] = fcd(samples, reference)
    return out
