"""The distillation loss family: one term comparing a student's outputs with a teacher's.

Every term subclasses :class:`DistillLoss` and is registered in :data:`DISTILL_LOSSES`. A term
is an ``nn.Module`` (it may own parameters, e.g. the projection of a feature loss, which then
go into the optimizer beside the student's) with one fixed call signature::

    loss = term(student, teacher, target=None, mask=None)   # a scalar tensor

``student`` and ``teacher`` are ``(..., width)`` tensors (logits or features; leading
dimensions are flattened into rows), ``target`` optional gold labels per row and ``mask`` an
optional boolean per row (``True`` = counts). The teacher side is always detached: no gradient
ever reaches the teacher. The engine that owns the training step is
:class:`chemprune.engines.distill.engine.Distiller`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from chemprune.engines.registry import Registry

__all__ = [
    "DISTILL_LOSSES",
    "DistillLoss",
    "check_temperature",
    "check_weight",
    "register_distill_loss",
    "rows",
]


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not t > 0 or math.isinf(t) or math.isnan(t):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return t


def check_weight(weight: float, what: str = "alpha") -> float:
    w = float(weight)
    if not (0.0 <= w <= 1.0) or math.isnan(w):
        raise ValueError(f"{what} must be in [0, 1], got {weight}")
    return w


def rows(x: Tensor) -> Tensor:
    """``(..., width)`` -> ``(rows, width)``."""
    if x.dim() < 1:
        raise ValueError("expected a tensor of shape (..., width), got a scalar")
    return x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x


def _row_mask(mask: Tensor | None, n: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    m = mask.reshape(-1).to(device=device, dtype=torch.bool)
    if m.numel() != n:
        raise ValueError(f"mask has {m.numel()} entries for {n} rows")
    return m


class DistillLoss(nn.Module, ABC):
    """Base class of distillation terms.

    Args:
        student_dim: width of the student's tensors (last dimension), if known.
        teacher_dim: width of the teacher's tensors, if known.
        reduction: ``"mean"`` over the counted rows, or ``"sum"``.
    """

    name: str = "base"
    #: True when the term compares class scores (same width on both sides required).
    on_logits: bool = False

    def __init__(
        self,
        *,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if (
            self.on_logits
            and student_dim is not None
            and teacher_dim is not None
            and student_dim != teacher_dim
        ):
            raise ValueError(
                f"{type(self).__name__} compares class scores: the student has {student_dim} "
                f"classes, the teacher {teacher_dim} (the vocabularies must be the same)"
            )
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.reduction = reduction

    def forward(
        self,
        student: Tensor,
        teacher: Tensor,
        target: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        s, t = rows(student), rows(teacher).detach()
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"student has {s.shape[0]} rows, teacher {t.shape[0]}")
        if target is not None:
            target = target.reshape(-1)
            if target.numel() != s.shape[0]:
                raise ValueError(f"target has {target.numel()} entries for {s.shape[0]} rows")
        m = _row_mask(mask, s.shape[0], s.device)
        per_row = self.per_row(s, t, target, m)
        total = per_row.masked_fill(~m, 0.0).sum()
        if self.reduction == "sum":
            return total
        return total / m.sum().clamp(min=1)

    @abstractmethod
    def per_row(
        self, student: Tensor, teacher: Tensor, target: Tensor | None, mask: Tensor
    ) -> Tensor:
        """Loss of each row, shape ``(rows,)``; rows with ``mask`` False are dropped after."""

    def extra_repr(self) -> str:
        return f"student_dim={self.student_dim}, teacher_dim={self.teacher_dim}, reduction={self.reduction!r}"


DISTILL_LOSSES: Registry[DistillLoss] = Registry("distillation loss", DistillLoss)
register_distill_loss = DISTILL_LOSSES.register
