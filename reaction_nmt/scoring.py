"""Top-k accuracy of ranked product predictions by canonical exact match (pure functions).

A prediction counts when its RDKit canonical SMILES (stereo kept, atom maps removed) equals
the canonical target, so different SMILES of the same product count; predictions RDKit cannot
parse never count and are reported as the invalid-SMILES rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from reaction_nmt.chem import canonicalize_or_none

__all__ = [
    "TOP_K",
    "score_predictions",
    "top1_hits",
    "paired_top1",
    "mcnemar_exact",
    "format_table",
    "read_nbest",
]

TOP_K = (1, 2, 3, 5)


def _check_lengths(targets: Sequence[str], predictions: Sequence[Sequence[str]]) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} prediction lists")


def _rank(target: str, preds: Sequence[str]) -> tuple[int | None, list[str | None]]:
    """The 0-based rank of ``target`` among ``preds`` by canonical match (a duplicate of a
    higher-ranked canonical prediction takes no rank; invalid ones do and never match), or
    None; and each prediction's canonical SMILES (None where invalid)."""
    canonical_target = canonicalize_or_none(target)
    if canonical_target is None:
        raise ValueError(f"target {target!r} is not a valid SMILES")
    canonical = [canonicalize_or_none(p) if p else None for p in preds]
    ranked: list[str | None] = []
    for c in canonical:
        if c is None or c not in ranked:
            ranked.append(c)
    rank = next((i for i, c in enumerate(ranked) if c == canonical_target), None)
    return rank, canonical


def score_predictions(
    targets: Sequence[str], predictions: Sequence[Sequence[str]], *, top_k: Sequence[int] = TOP_K
) -> dict:
    """Top-k accuracies and invalid rates for ``predictions[i]`` (ranked SMILES) of
    ``targets[i]``.

    Returns ``{"n", "top_k": {"1": acc, ...}, "invalid_top1", "invalid_all", "n_best"}``;
    accuracies are fractions in [0, 1]. ``k`` larger than the number of predictions counts
    only those there are. A duplicate of a higher-ranked canonical prediction is skipped, as
    usual for beam outputs that differ only in SMILES spelling.
    """
    _check_lengths(targets, predictions)
    if not targets:
        raise ValueError("no targets to score")
    hits = dict.fromkeys(top_k, 0)
    invalid_top1 = invalid_all = total = 0
    for target, preds in zip(targets, predictions, strict=True):
        rank, canonical = _rank(target, preds)
        total += len(preds)
        invalid_all += sum(c is None for c in canonical)
        invalid_top1 += not canonical or canonical[0] is None
        for k in top_k:
            hits[k] += rank is not None and rank < k
    n = len(targets)
    return {
        "n": n,
        "top_k": {str(k): hits[k] / n for k in top_k},
        "invalid_top1": invalid_top1 / n,
        "invalid_all": invalid_all / total if total else 0.0,
        "n_best": max((len(p) for p in predictions), default=0),
    }


def top1_hits(targets: Sequence[str], predictions: Sequence[Sequence[str]]) -> list[bool]:
    """Per target: whether the first prediction is the same molecule (canonical match; an
    invalid or missing first prediction is a miss), as counted by :func:`score_predictions`."""
    _check_lengths(targets, predictions)
    return [_rank(t, preds)[0] == 0 for t, preds in zip(targets, predictions, strict=True)]


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the probability, if neither model is better, of a
    split of the ``only_a + only_b`` discordant examples at least as uneven as this one
    (binomial with p = 1/2)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_top1(
    targets: Sequence[str],
    predictions_a: Sequence[Sequence[str]],
    predictions_b: Sequence[Sequence[str]],
) -> dict:
    """Two models' top-1 on the same targets, example by example.

    Returns ``{"n", "both", "neither", "only_a", "only_b", "difference", "p_value"}``:
    counts of examples both, neither or only one of the models gets right, ``difference`` =
    top-1 of a minus top-1 of b (a fraction) and :func:`mcnemar_exact`'s p-value. Pairing
    leaves out the examples both get right or both miss, so it tells a real difference from
    noise with far fewer examples than comparing two accuracies does.
    """
    a, b = top1_hits(targets, predictions_a), top1_hits(targets, predictions_b)
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    both = sum(x and y for x, y in zip(a, b, strict=True))
    n = len(a)
    return {
        "n": n,
        "both": both,
        "neither": n - both - only_a - only_b,
        "only_a": only_a,
        "only_b": only_b,
        "difference": (only_a - only_b) / n,
        "p_value": mcnemar_exact(only_a, only_b),
    }


def format_table(result: dict, *, title: str = "") -> str:
    """A short fixed-width table of a :func:`score_predictions` result."""
    ks = list(result["top_k"])
    head = " ".join(f"{'top-' + k:>7}" for k in ks) + f" {'invalid@1':>10} {'n':>7}"
    row = " ".join(f"{100 * result['top_k'][k]:6.2f}%" for k in ks)
    row += f" {100 * result['invalid_top1']:9.2f}% {result['n']:7d}"
    return "\n".join(x for x in (title, head, row) if x)


def read_nbest(path, n_best: int) -> list[list[str]]:
    """Group an OpenNMT-style output file (``n_best`` lines per source) into lists."""
    with open(path) as fh:
        lines = [line.rstrip("\n") for line in fh]
    if n_best < 1 or len(lines) % n_best:
        raise ValueError(f"{path}: {len(lines)} lines is not a multiple of n_best={n_best}")
    return [lines[i : i + n_best] for i in range(0, len(lines), n_best)]
