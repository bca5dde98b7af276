"""Distillation inside the search: the supernet learns from a trained SchNet teacher.

The objective of both DARTS levels is ``task_weight * MSE(pred, y) + output_weight * KD_out +
feature_weight * KD_feat`` with the terms of
:class:`~chemprune.molecules.schnet.distill.SchNetDistillation`: the teacher's predictions and, block by
block, its residual stream ``h_b`` (DNA's block-wise supervision: the supernet's block ``b``
is pushed to produce what the teacher's block ``b`` produced, so every block's operations are
compared on a well-posed local target rather than only through the end loss). ``mode``:
``none`` (the task alone: plain DARTS), ``output`` or ``features``.

References:
    C. Li, J. Peng, L. Yuan, G. Wang, X. Liang, L. Lin, X. Chang, "Block-wisely supervised
    neural architecture search with knowledge distillation" (DNA), CVPR 2020.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.distill import DISTILL_MODES, SchNetDistillation

__all__ = ["schnet_search_loss"]


def schnet_search_loss(
    *,
    student: SchNet,
    teacher: SchNet | None = None,
    mode: str = "features",
    task_weight: float = 1.0,
    output_weight: float = 1.0,
    feature_weight: float = 1.0,
) -> tuple[Callable[[nn.Module, Any], Tensor], SchNetDistillation | None]:
    """``(loss(model, batch), distillation)`` for a search (or a retraining) of ``student``.

    ``batch`` is a :class:`~chemprune.molecules.data.batching.MoleculeBatch`. The distillation object
    (``None`` for ``mode="none"``) owns the hooks (call its ``close()`` at the end) and any
    adapters (:meth:`SchNetDistillation.auxiliary_parameters`, to train with the weights).
    """
    if mode not in DISTILL_MODES:
        raise ValueError(
            f"distillation mode must be one of {', '.join(DISTILL_MODES)}, got {mode!r}"
        )
    if not (task_weight >= 0 and task_weight < float("inf")):
        raise ValueError(f"task_weight must be a finite number >= 0, got {task_weight}")
    if mode != "none" and teacher is None:
        raise ValueError(f"distillation mode {mode!r} needs a teacher")
    distill = None
    if mode != "none":
        distill = SchNetDistillation(
            teacher=teacher, student=student, mode=mode,
            output_weight=output_weight, feature_weight=feature_weight,
        )  # fmt: skip

    def loss(model: nn.Module, batch: Any) -> Tensor:
        if model is not student:
            raise ValueError("this loss was built for another model")
        if distill is None:
            pred = model(batch.z, batch.pos, batch.batch, num_molecules=batch.num_molecules)
            kd = pred.new_zeros(())
        else:
            pred, terms = distill(
                batch.z, batch.pos, batch.batch, num_molecules=batch.num_molecules
            )
            kd = terms["kd"]
        err = pred - batch.y
        return task_weight * (err * err).mean() + kd

    return loss, distill
