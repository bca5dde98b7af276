"""Distilling a dense SchNet parent into its pruned (masked, gated or shrunk) student.

The student is trained on ``task + output_weight * KD_out + feature_weight * KD_feat`` where

* ``KD_out`` is the squared difference of the two models' predictions per molecule, divided by
  the parent's output variance ``std**2`` (the normalisation the parent was trained with), so
  the weight does not depend on the target's unit;
* ``KD_feat`` averages over the interaction blocks the squared difference of the per-block atom
  features ``h_b = embedding(z) + v_1 + ... + v_b`` (the residual stream after block ``b``),
  each divided by the parent's mean per-channel variance of ``h_b`` on that batch (scale-free).
  When the widths differ, or the student's atom basis is being pruned (its masked channels are
  zero and cannot match), the student's features pass through a learned linear adapter per block
  (FitNets), whose parameters :meth:`auxiliary_parameters` returns for the optimizer.

The parent runs in eval mode under ``torch.no_grad``, and its parameters stop requiring
gradients: it is never updated. For a student equal to its parent both terms are exactly zero.

References:
    G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network", 2015;
    A. Romero et al., "FitNets: hints for thin deep nets", ICLR 2015.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.distill.capture import FeatureCapture
from chemprune.engines.distill.features import MSEFeatureLoss
from chemprune.molecules.models.graph import radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = ["DISTILL_MODES", "SchNetDistillation"]

#: ``none``: the task loss alone; ``output``: + predictions; ``features``: + per-block features.
DISTILL_MODES = ("none", "output", "features")


def _stream_names(model: SchNet) -> list[str]:
    return ["embedding"] + [f"interactions.{b}" for b in range(len(model.interactions))]


def _residual_stream(features: dict[str, Tensor], names: list[str]) -> list[Tensor]:
    """``[h_1, ..., h_B]`` from the captured embedding and block updates."""
    h = features[names[0]]
    out = []
    for name in names[1:]:
        h = h + features[name]
        out.append(h)
    return out


class SchNetDistillation(nn.Module):
    """The distillation terms between a frozen SchNet ``teacher`` and a student SchNet.

    Args:
        teacher: the dense parent (put in eval mode and frozen).
        student: the model being trained (its forward passes are watched by hooks).
        mode: ``output`` or ``features`` (``features`` includes the output term).
        output_weight: weight of the prediction term (``>= 0``).
        feature_weight: weight of the feature term (``>= 0``; ``features`` mode only).
        adapter: learn a linear map from the student's features to the teacher's per block;
            ``None``: only when the atom-basis widths differ.
        teacher_blocks: for a student with fewer blocks (an architecture derived by search that
            skips some), the teacher block whose residual stream each student block matches
            (increasing); default: block ``b`` to block ``b`` (equal depths required).

    Call :meth:`__call__` ``(z, pos, batch, num_molecules)``: it runs both models and returns the
    student's predictions (in the graph) and the terms; :meth:`close` removes the hooks.
    """

    def __init__(
        self,
        *,
        teacher: SchNet,
        student: SchNet,
        mode: str = "features",
        output_weight: float = 1.0,
        feature_weight: float = 1.0,
        adapter: bool | None = None,
        teacher_blocks: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if mode not in DISTILL_MODES or mode == "none":
            raise ValueError(f"distillation mode must be 'output' or 'features', got {mode!r}")
        for name, w in (("output_weight", output_weight), ("feature_weight", feature_weight)):
            if not float(w) >= 0 or w == float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {w}")
        if teacher is student:
            raise ValueError("the student and the teacher are the same model")
        n_t, n_s = len(teacher.interactions), len(student.interactions)
        if teacher_blocks is None:
            if n_t != n_s:
                raise ValueError(
                    f"the teacher has {n_t} interaction blocks, the student {n_s}: per-block "
                    "features cannot be paired (give teacher_blocks)"
                )
            teacher_blocks = range(n_t)
        pairing = [int(b) for b in teacher_blocks]
        if (
            len(pairing) != n_s
            or any(not 0 <= b < n_t for b in pairing)
            or pairing != sorted(set(pairing))
        ):
            raise ValueError(
                f"teacher_blocks {pairing} must give {n_s} increasing blocks of the teacher's {n_t}"
            )
        self.teacher_blocks = pairing
        self.teacher = teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._student = [student]  # not a submodule: its parameters belong to the caller
        self.mode = mode
        self.output_weight = float(output_weight)
        self.feature_weight = float(feature_weight) if mode == "features" else 0.0
        self.names = _stream_names(student)
        self.teacher_names = _stream_names(teacher)
        s_dim, t_dim = student.hidden_channels, teacher.hidden_channels
        project = (s_dim != t_dim) if adapter is None else bool(adapter)
        self.feature_terms = nn.ModuleList(
            MSEFeatureLoss(student_dim=s_dim, teacher_dim=t_dim, project=project)
            for _ in student.interactions
        )
        if project:  # start the adapters at the identity (the student begins as the teacher)
            for term in self.feature_terms:
                with torch.no_grad():
                    term.projection.weight.copy_(torch.eye(t_dim, s_dim))
                    term.projection.bias.zero_()
        self.feature_terms.to(next(student.parameters()).device)
        self._s_cap: FeatureCapture | None = None
        self._t_cap: FeatureCapture | None = None
        if self.feature_weight > 0:
            self._s_cap = FeatureCapture(student, self.names)
            self._t_cap = FeatureCapture(teacher, self.teacher_names, detach=True)

    @property
    def student(self) -> SchNet:
        return self._student[0]

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """The adapters' parameters (empty without adapters): train them with the student."""
        return [p for term in self.feature_terms for p in term.auxiliary_parameters()]

    def train(self, mode: bool = True) -> SchNetDistillation:
        super().train(mode)
        self.teacher.eval()  # the teacher never leaves eval mode
        return self

    def forward(
        self, z: Tensor, pos: Tensor, batch: Tensor, num_molecules: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Student predictions ``[M]`` and ``{"kd": weighted sum, "kd_output", "kd_features"}``."""
        for cap in (self._s_cap, self._t_cap):
            if cap is not None:
                cap.clear()
        pairs = None  # one radius graph for both models when they share the cutoff
        if self.teacher.cutoff == self.student.cutoff:
            pairs = radius_pairs(pos, batch, self.student.cutoff)
        with torch.no_grad():
            t_pred = self.teacher(z, pos, batch, pairs=pairs, num_molecules=num_molecules)
        pred = self.student(z, pos, batch, pairs=pairs, num_molecules=num_molecules)
        var = self.teacher.std.detach().to(pred.dtype) ** 2
        kd_out = ((pred - t_pred) ** 2).mean() / var.clamp_min(1e-12)
        kd_feat = pred.new_zeros(())
        if self._s_cap is not None and self._t_cap is not None:
            s_h = _residual_stream(self._s_cap.features, self.names)
            t_all = _residual_stream(self._t_cap.features, self.teacher_names)
            t_h = [t_all[b] for b in self.teacher_blocks]
            for term, s, t in zip(self.feature_terms, s_h, t_h, strict=True):
                scale = t.var(dim=0, unbiased=False).mean().clamp_min(1e-12)
                kd_feat = kd_feat + term(s, t) / scale
            kd_feat = kd_feat / len(s_h)
            self._s_cap.clear()
            self._t_cap.clear()
        kd = self.output_weight * kd_out + self.feature_weight * kd_feat
        return pred, {"kd": kd, "kd_output": kd_out.detach(), "kd_features": kd_feat.detach()}

    def settings(self) -> dict[str, Any]:
        """What the report and the checkpoint record."""
        return {
            "mode": self.mode,
            "output_weight": self.output_weight,
            "feature_weight": self.feature_weight,
            "adapter": bool(self.auxiliary_parameters()),
        }

    def close(self) -> None:
        for cap in (self._s_cap, self._t_cap):
            if cap is not None:
                cap.remove()

    def extra_repr(self) -> str:
        s = self.settings()
        return ", ".join(f"{k}={v}" for k, v in s.items())
