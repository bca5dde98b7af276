"""Intermediate-feature distillation (FitNets): match a student layer's output to a teacher's.

``mse`` is the mean squared difference per row (averaged over the width), ``cosine`` one minus
the cosine similarity per row. When the widths differ (or ``project=True``) the student's
features first go through a learned linear map to the teacher's width, the FitNets
"regressor"; its parameters are returned by :meth:`FeatureLoss.auxiliary_parameters` and
must be trained with the student (the :class:`~chemprune.engines.distill.engine.Distiller` does so).

References:
    A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: hints for
    thin deep nets", ICLR 2015.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from chemprune.engines.distill.base import DistillLoss, register_distill_loss

__all__ = ["CosineFeatureLoss", "DiscriminantFeatureLoss", "FeatureLoss", "MSEFeatureLoss"]


class FeatureLoss(DistillLoss):
    """Base of feature terms: optional projection of the student's features, then a distance.

    Args:
        student_dim, teacher_dim: feature widths; a projection is built when they differ.
        project: force (``True``) or forbid (``False``) the projection; ``None`` = when the
            widths differ.
        reduction: see :class:`DistillLoss`.
    """

    def __init__(
        self,
        *,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        project: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(student_dim=student_dim, teacher_dim=teacher_dim, reduction=reduction)
        differ = student_dim is not None and teacher_dim is not None and student_dim != teacher_dim
        if project is None:
            project = differ
        if project and (student_dim is None or teacher_dim is None):
            raise ValueError("a projection needs student_dim and teacher_dim")
        if differ and not project:
            raise ValueError(
                f"feature widths differ (student {student_dim}, teacher {teacher_dim}): "
                "a projection is needed (project=None or True)"
            )
        self.projection: nn.Linear | None = (
            nn.Linear(student_dim, teacher_dim) if project else None  # type: ignore[arg-type]
        )

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return list(self.projection.parameters()) if self.projection is not None else []

    def per_row(
        self, student: Tensor, teacher: Tensor, target: Tensor | None, mask: Tensor
    ) -> Tensor:
        if self.projection is not None:
            student = self.projection(student)
        if student.shape[-1] != teacher.shape[-1]:
            raise ValueError(
                f"feature widths differ (student {student.shape[-1]}, teacher "
                f"{teacher.shape[-1]}); build the loss with student_dim/teacher_dim"
            )
        return self.distance(student.float(), teacher.float())

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, project={self.projection is not None}"


@register_distill_loss("mse")
class MSEFeatureLoss(FeatureLoss):
    """Mean squared difference per row."""

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        return (student - teacher).pow(2).mean(-1)


@register_distill_loss("cosine")
class CosineFeatureLoss(FeatureLoss):
    """``1 - cos(student, teacher)`` per row (scale-free)."""

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        return 1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)


@register_distill_loss("discriminant")
class DiscriminantFeatureLoss(FeatureLoss):
    """Mean squared difference per row after projecting both onto a discriminant subspace
    (CDC's distillation: only the directions that separate the classes are matched).

    Args:
        subspace: ``[teacher_dim, d]`` directions
            (:func:`chemprune.engines.prune.discriminant.discriminant_subspace` of the teacher's
            features); ``None`` until :meth:`set_subspace`, which matches every direction
            (plain MSE).
    """

    def __init__(self, *, subspace: Tensor | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("subspace", None if subspace is None else subspace.detach().clone())

    def set_subspace(self, subspace: Tensor) -> None:
        if subspace.dim() != 2:
            raise ValueError(f"subspace must be [teacher_dim, d], got {list(subspace.shape)}")
        self.subspace = subspace.detach().clone()

    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        if self.subspace is not None:
            w = self.subspace.to(student.dtype)
            if w.shape[0] != teacher.shape[-1]:
                raise ValueError(
                    f"the subspace is for width {w.shape[0]}, the teacher's features have "
                    f"{teacher.shape[-1]}"
                )
            student, teacher = student @ w, teacher @ w
        return (student - teacher).pow(2).mean(-1)
