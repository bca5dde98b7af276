"""Top-k accuracy of ranked product predictions by canonical exact match (pure functions).

A prediction counts when its RDKit canonical SMILES (stereo kept, atom maps removed) equals
the canonical target, so different SMILES of the same product count; predictions RDKit cannot
parse never count and are reported as the invalid-SMILES rate.
"""

from __future__ import annotations

from collections.abc import Sequence

from reaction_nmt.chem import canonicalize_or_none

__all__ = ["TOP_K", "score_predictions", "format_table", "read_nbest"]

TOP_K = (1, 2, 3, 5)


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
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} prediction lists")
    if not targets:
        raise ValueError("no targets to score")
    hits = dict.fromkeys(top_k, 0)
    invalid_top1 = invalid_all = total = 0
    for target, preds in zip(targets, predictions, strict=True):
        canonical_target = canonicalize_or_none(target)
        if canonical_target is None:
            raise ValueError(f"target {target!r} is not a valid SMILES")
        ranked: list[str | None] = []
        for i, p in enumerate(preds):
            c = canonicalize_or_none(p) if p else None
            total += 1
            if c is None:
                invalid_all += 1
                invalid_top1 += i == 0
            if c is None or c not in ranked:
                ranked.append(c)
        rank = next((i for i, c in enumerate(ranked) if c == canonical_target), None)
        for k in top_k:
            hits[k] += rank is not None and rank < k
        if not preds:
            invalid_top1 += 1
    n = len(targets)
    return {
        "n": n,
        "top_k": {str(k): hits[k] / n for k in top_k},
        "invalid_top1": invalid_top1 / n,
        "invalid_all": invalid_all / total if total else 0.0,
        "n_best": max((len(p) for p in predictions), default=0),
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
