"""Soft targets (Hinton et al.): KL divergence between temperature-softened class distributions.

Per row, with student logits ``s``, teacher logits ``t`` and temperature ``T``::

    kd = T^2 * KL(softmax(t / T) || softmax(s / T))
    loss = (1 - alpha) * CE(s, gold) + alpha * kd

The ``T^2`` factor keeps the soft term's gradient, ``T * (softmax(s/T) - softmax(t/T))``, on
the same scale as the hard-label one when ``T`` changes. ``alpha = 1`` (the default) is pure
distillation and needs no gold labels; rows whose gold label is ``ignore_index`` (padding) do
not count in either term.

References:
    G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network",
    NIPS Deep Learning Workshop 2014.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from chemprune.engines.distill.base import (
    DistillLoss,
    check_temperature,
    check_weight,
    register_distill_loss,
    rows,
)

__all__ = ["SoftTargetLoss", "soft_target_kl"]


def soft_target_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` per row, shape ``(rows,)``.

    Computed in float32 whatever the input precision; the teacher is detached. Teacher logits
    of ``-inf`` (classes a :class:`~chemprune.engines.distill.cache.TeacherCache` did not keep) have
    probability 0 and do not count."""
    t = check_temperature(temperature)
    log_s = F.log_softmax(rows(student).float() / t, dim=-1)
    log_t = F.log_softmax(rows(teacher).detach().float() / t, dim=-1)
    p_t = log_t.exp()
    log_t = torch.where(p_t > 0, log_t, torch.zeros_like(log_t))
    return (p_t * (log_t - log_s)).sum(-1) * (t * t)


@register_distill_loss("soft_target")
class SoftTargetLoss(DistillLoss):
    """Temperature-scaled KL to the teacher's class distribution, mixed with gold labels.

    Args:
        temperature: softening temperature ``T > 0`` (1 = the models' own distributions).
        alpha: weight of the soft term in ``[0, 1]``; ``1 - alpha`` goes to cross-entropy on
            the gold labels (``target`` is then required).
        ignore_index: gold label of rows that do not count (padding).
        label_smoothing: of the hard-label cross-entropy.
        student_dim, teacher_dim, reduction: see :class:`DistillLoss` (the widths, when
            given, must be equal: both sides score the same classes).
    """

    on_logits = True

    def __init__(
        self,
        *,
        temperature: float = 2.0,
        alpha: float = 1.0,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, reduction=reduction)
        self.temperature = check_temperature(temperature)
        self.alpha = check_weight(alpha)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = check_weight(label_smoothing, "label_smoothing")

    def forward(
        self,
        student: Tensor,
        teacher: Tensor,
        target: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        if target is None and self.alpha < 1.0:
            raise ValueError(f"alpha={self.alpha} < 1 mixes in gold labels: pass target=")
        if target is not None:
            keep = target.reshape(-1) != self.ignore_index
            mask = keep if mask is None else keep & mask.reshape(-1).to(keep.device, torch.bool)
        return super().forward(student, teacher, target, mask)

    def per_row(
        self, student: Tensor, teacher: Tensor, target: Tensor | None, mask: Tensor
    ) -> Tensor:
        if student.shape[-1] != teacher.shape[-1]:
            raise ValueError(
                f"student scores {student.shape[-1]} classes, the teacher {teacher.shape[-1]}"
            )
        loss = soft_target_kl(student, teacher, self.temperature) * self.alpha
        if self.alpha < 1.0:
            assert target is not None
            ce = F.cross_entropy(
                student.float(),
                target,
                reduction="none",
                ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing,
            )
            loss = loss + (1.0 - self.alpha) * ce
        return loss

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, alpha={self.alpha}, "
            f"ignore_index={self.ignore_index}, {super().extra_repr()}"
        )
