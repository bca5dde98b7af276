"""A model's predictions on a set of molecules, and its inference speed on them: what the jobs
(:mod:`chemprune.pipeline.evaluate`) and the deployment checks (:mod:`chemprune.deploy.tabulate`)
both measure."""

from __future__ import annotations

import numpy as np
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet

__all__ = ["predict_indices", "throughput"]


@torch.no_grad()
def predict_indices(
    model: SchNet | torch.nn.Module, data: MoleculeSet, indices: np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """Predictions for molecules ``indices`` of ``data``, in order."""
    was_training = bool(getattr(model, "training", False))  # frozen graphs have no mode
    if was_training:
        model.eval()
    out = []
    try:
        for b in data.batches(indices, batch_size):
            out.append(model(b.z, b.pos, b.batch, num_molecules=b.num_molecules))
    finally:
        if was_training:
            model.train(True)
    return torch.cat(out) if out else torch.zeros(0, device=data.device)


@torch.no_grad()
def throughput(
    model: SchNet, data: MoleculeSet, indices: np.ndarray, *, batch_size: int = 64, repeats: int = 3
) -> float:
    """Inference molecules per second over ``indices`` (median of ``repeats`` passes, batches
    collated beforehand, one warm-up pass)."""
    import statistics
    import time

    batches = [
        data.collate(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)
    ]
    was = model.training
    model.eval()
    rates = []
    with torch.inference_mode():
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            for b in batches:
                model(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
            if r:
                rates.append(len(indices) / (time.perf_counter() - t0))
    model.train(was)
    return statistics.median(rates)
