"""The distillation engine for any pair of ``nn.Module``s: it owns the training step.

::

    distiller = Distiller(student=small, teacher=big, temperature=2.0, alpha=0.5,
                          features={"body.2": "body.4"}, example_input=x[:2])
    for x, y in loader:
        stats = distiller.train_step((x, y))      # teacher forward (no grad), student
                                                  # forward, loss, backward, optimizer step
    distiller.close()                             # removes the feature hooks

The loss is ``soft_target(student_logits, teacher_logits, y)`` (temperature-scaled KL mixed
with cross-entropy on ``y`` by ``alpha``, :class:`~chemprune.engines.distill.soft_target.SoftTargetLoss`)
plus ``feature_weight`` times the sum of the feature terms (``mse`` or ``cosine``, any entry
of :data:`~chemprune.engines.distill.base.DISTILL_LOSSES`) between the outputs of the paired
submodules, captured by forward hooks. Learned projections of feature terms (when widths
differ) are trained with the student.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from chemprune.engines.distill.base import (
    DISTILL_LOSSES,
    DistillLoss,
    check_temperature,
    check_weight,
)
from chemprune.engines.distill.capture import FeatureCapture, first_tensor
from chemprune.engines.distill.soft_target import SoftTargetLoss

__all__ = ["Distiller", "call_model"]


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(*inputs)`` for a tuple/list, ``model(**inputs)`` for a mapping, else
    ``model(inputs)``."""
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


class Distiller:
    """Distil ``teacher`` into ``student``; owns the training step.

    Args:
        student: the model being trained.
        teacher: the frozen model whose outputs are the targets (put in eval mode, its
            parameters stop requiring gradients).
        temperature: soft-target temperature ``T > 0``.
        alpha: weight of the soft term; ``1 - alpha`` goes to the gold labels.
        features: ``{student submodule: teacher submodule}`` pairs whose outputs are matched.
        feature_loss: registered name of the feature term (``mse``, ``cosine``).
        feature_weight: weight of the summed feature terms (``>= 0``).
        example_input: one batch of inputs, run once through both models to learn the feature
            widths (required with ``features``) and check that both score the same classes.
        logits: picks the logits out of a model's output (default: the output, or its first
            tensor).
        ignore_index: gold label of rows that do not count.
        label_smoothing: of the hard-label cross-entropy.
        optimizer: over the student's parameters and :meth:`auxiliary_parameters`; default
            Adam with ``lr``.
        lr: learning rate of the default optimizer.
        max_grad_norm: clip the gradient norm (student + projections) when given.
    """

    def __init__(
        self,
        *,
        student: nn.Module,
        teacher: nn.Module,
        temperature: float = 2.0,
        alpha: float = 0.5,
        features: Mapping[str, str] | None = None,
        feature_loss: str = "mse",
        feature_weight: float = 1.0,
        example_input: Any = None,
        logits: Callable[[Any], Tensor] = first_tensor,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        max_grad_norm: float | None = None,
    ) -> None:
        if student is teacher:
            raise ValueError("student and teacher are the same module")
        self.student = student
        self.teacher = teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.temperature = check_temperature(temperature)
        self.alpha = check_weight(alpha)
        if not feature_weight >= 0:
            raise ValueError(f"feature_weight must be >= 0, got {feature_weight}")
        self.feature_weight = float(feature_weight)
        self.logits = logits
        self.max_grad_norm = max_grad_norm
        self.pairs = dict(features or {})
        if self.pairs and example_input is None:
            raise ValueError("features need example_input (to learn the feature widths)")
        self._student_cap = FeatureCapture(student, list(self.pairs)) if self.pairs else None
        self._teacher_cap = (
            FeatureCapture(teacher, list(self.pairs.values()), detach=True) if self.pairs else None
        )
        widths: dict[str, tuple[int, int]] = {}
        s_classes = t_classes = None
        if example_input is not None:
            with torch.no_grad():
                s_classes = logits(call_model(student, example_input)).shape[-1]
                t_classes = logits(call_model(teacher, example_input)).shape[-1]
            for s_name, t_name in self.pairs.items():
                widths[s_name] = (
                    self._student_cap.features[s_name].shape[-1],  # type: ignore[union-attr]
                    self._teacher_cap.features[t_name].shape[-1],  # type: ignore[union-attr]
                )
            self._clear()
        self.soft: SoftTargetLoss = SoftTargetLoss(
            temperature=self.temperature,
            alpha=self.alpha,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            student_dim=s_classes,
            teacher_dim=t_classes,
        )
        cls = DISTILL_LOSSES.get(feature_loss)
        self.feature_losses = nn.ModuleDict(
            {_key(s): cls(student_dim=widths[s][0], teacher_dim=widths[s][1]) for s in self.pairs}
        )
        device = next(iter(student.parameters()), torch.empty(0)).device
        self.feature_losses.to(device)
        aux = self.auxiliary_parameters()
        if optimizer is None:
            optimizer = torch.optim.Adam([*student.parameters(), *aux], lr=lr)
        else:
            have = {id(p) for g in optimizer.param_groups for p in g["params"]}
            if any(id(p) not in have for p in aux):
                raise ValueError(
                    "the optimizer lacks the feature projections: build it over "
                    "[*student.parameters(), *distiller.auxiliary_parameters()]"
                )
        self.optimizer = optimizer

    # ------------------------------------------------------------------ parts
    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the loss terms (feature projections)."""
        out: list[nn.Parameter] = []
        for term in self.feature_losses.values():
            out += term.auxiliary_parameters() if hasattr(term, "auxiliary_parameters") else []
        return out

    def loss(
        self,
        student_out: Any,
        teacher_out: Any,
        target: Tensor | None = None,
        *,
        student_features: Mapping[str, Tensor] | None = None,
        teacher_features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """``{"loss": total, "soft": logit term, "features": feature terms}`` (scalars).

        Features default to those captured by the hooks in the last forward passes."""
        soft = self.soft(self.logits(student_out), self.logits(teacher_out), target)
        feats = soft.new_zeros(())
        if self.pairs:
            sf = student_features if student_features is not None else self._student_cap.features  # type: ignore[union-attr]
            tf = teacher_features if teacher_features is not None else self._teacher_cap.features  # type: ignore[union-attr]
            for s_name, t_name in self.pairs.items():
                if s_name not in sf or t_name not in tf:
                    raise RuntimeError(
                        f"no captured features for {s_name!r} / {t_name!r}: did the forward "
                        "passes run through these submodules?"
                    )
                term: DistillLoss = self.feature_losses[_key(s_name)]  # type: ignore[assignment]
                feats = feats + term(sf[s_name], tf[t_name])
        return {"loss": soft + self.feature_weight * feats, "soft": soft, "features": feats}

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimizer step on ``batch`` = ``(inputs, target)`` (or ``inputs`` alone when
        ``alpha == 1``; pack several inputs as a tuple: ``((x1, x2), y)``)."""
        inputs, target = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        if isinstance(batch, (tuple, list)) and len(batch) != 2:
            raise ValueError("batch must be (inputs, target) or inputs")
        self._clear()
        self.teacher.eval()
        self.student.train()
        with torch.no_grad():
            teacher_out = call_model(self.teacher, inputs)
        student_out = call_model(self.student, inputs)
        parts = self.loss(student_out, teacher_out, target)
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        if self.max_grad_norm is not None:
            params = [*self.student.parameters(), *self.auxiliary_parameters()]
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.optimizer.step()
        self._clear()
        return {k: float(v.detach()) for k, v in parts.items()}

    def close(self) -> None:
        """Remove the feature hooks from both models."""
        for cap in (self._student_cap, self._teacher_cap):
            if cap is not None:
                cap.remove()

    def _clear(self) -> None:
        for cap in (self._student_cap, self._teacher_cap):
            if cap is not None:
                cap.clear()

    def __repr__(self) -> str:
        return (
            f"Distiller(temperature={self.temperature}, alpha={self.alpha}, "
            f"features={self.pairs}, feature_weight={self.feature_weight}, "
            f"feature_losses={[type(t).__name__ for t in self.feature_losses.values()]})"
        )


def _key(name: str) -> str:
    """ModuleDict keys may not contain dots."""
    return name.replace(".", "__")
