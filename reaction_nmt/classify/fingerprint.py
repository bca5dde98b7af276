"""The fingerprint baseline of reaction classification (Schneider, Lowe, Sayle, Landrum 2015):
RDKit's difference fingerprint of each reaction (atom-pair counts of the product minus those of
the reactants, hashed to ``size`` entries) and a multinomial logistic regression (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reaction_nmt.classify.data import ClassifiedReaction

__all__ = ["difference_fingerprints", "fingerprint_baseline"]


def difference_fingerprints(
    reactions: Sequence[ClassifiedReaction], size: int = 2048
) -> np.ndarray:
    """``[N, size]`` float32 difference fingerprints (a reaction RDKit cannot read: zeros)."""
    from rdkit import RDLogger
    from rdkit.Chem import rdChemReactions

    RDLogger.DisableLog("rdApp.*")
    params = rdChemReactions.ReactionFingerprintParams()
    params.fpSize = size
    params.fpType = rdChemReactions.FingerprintType.AtomPairFP
    out = np.zeros((len(reactions), size), dtype=np.float32)
    for i, r in enumerate(reactions):
        try:
            rxn = rdChemReactions.ReactionFromSmarts(r.smiles, useSmiles=True)
            fp = rdChemReactions.CreateDifferenceFingerprintForReaction(rxn, params)
        except Exception:  # noqa: BLE001 - RDKit raises several kinds for unreadable SMILES
            continue
        for k, v in fp.GetNonzeroElements().items():
            out[i, k] = v
    return out


def fingerprint_baseline(
    train: Sequence[ClassifiedReaction], test: Sequence[ClassifiedReaction], *, size: int = 2048,
    max_iter: int = 300, seed: int = 0,
) -> dict:  # fmt: skip
    """Fit on ``train``, score on ``test``: accuracy and the predicted 0-based classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, xte = difference_fingerprints(train, size), difference_fingerprints(test, size)
    ytr = np.array([r.label for r in train])
    yte = np.array([r.label for r in test])
    # signed counts: a log-like squashing keeps large counts from dominating
    xtr, xte = np.sign(xtr) * np.log1p(np.abs(xtr)), np.sign(xte) * np.log1p(np.abs(xte))
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(xtr), ytr)
    pred = clf.predict(scaler.transform(xte))
    return {"accuracy": float((pred == yte).mean()), "pred": pred.tolist(), "n": len(yte)}
