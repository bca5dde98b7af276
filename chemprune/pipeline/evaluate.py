"""Error metrics of a model on a set of molecules (the predictions come from
:func:`chemprune.molecules.predict.predict_indices`)."""

from __future__ import annotations

import math

import numpy as np
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.predict import predict_indices

__all__ = ["prediction_errors", "evaluate_model"]


def prediction_errors(
    model: SchNet | torch.nn.Module, data: MoleculeSet, indices: np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """Prediction minus target (float64) for molecules ``indices`` of ``data``, in order."""
    if data.y is None:
        raise ValueError("the molecules have no target values to evaluate against")
    if len(indices) == 0:
        raise ValueError("no molecules to evaluate")
    pred = predict_indices(model, data, indices, batch_size).double()
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).to(data.device)
    return pred - data.y[idx].double()


def evaluate_model(
    model: SchNet, data: MoleculeSet, indices: np.ndarray, batch_size: int = 256
) -> dict[str, float]:
    """MAE and RMSE (target unit) over ``indices``."""
    err = prediction_errors(model, data, indices, batch_size)
    return {
        "mae": float(err.abs().mean()),
        "rmse": math.sqrt(float((err * err).mean())),
        "n": int(err.numel()),
    }
