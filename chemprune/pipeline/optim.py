"""Optimizer and learning-rate schedule of ``chemprune.pipeline.train``.

Optimizers: Adam, or SGD with momentum (TernGrad's paper trains with it; see README).
Schedules: plateau (per epoch) or cosine (per step).

``plateau`` halves the learning rate (``lr_factor``) when the validation MAE has not improved for
``lr_patience`` epochs and ends training when it reaches ``min_lr``: open-ended runs.
``cosine`` anneals it from ``lr`` to ``min_lr`` over exactly ``epochs x steps_per_epoch``
optimizer steps (Loshchilov & Hutter 2017, without restarts): runs of a fixed length, where
every configuration of a comparison ends at the same small learning rate, so gradient noise (of
the batch, of TernGrad's ternary values) is averaged out the same way for all of them. An
optional linear warm-up (``warmup_steps``, Goyal et al. 2017) raises it from ``lr / warmup`` to
``lr`` first, which lets noisy gradients (TernGrad's) start at learning rates that would
otherwise diverge in the first steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "LRSchedule",
    "cosine_factor",
    "make_optimizer",
    "warmup_cosine_factor",
]

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("plateau", "cosine")


def make_optimizer(
    params: Iterable[torch.nn.Parameter], *, name: str, lr: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """Adam, or SGD with ``momentum``, over ``params`` at ``lr``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def cosine_factor(step: int, total: int, floor: float) -> float:
    """Multiplier of the base learning rate after ``step`` of ``total`` steps: 1 -> ``floor``."""
    t = min(max(step, 0), total) / max(total, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def warmup_cosine_factor(step: int, total: int, floor: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps (``1/warmup`` .. 1), then the cosine over the rest."""
    if step < warmup:
        return (step + 1) / warmup
    return cosine_factor(step - warmup, total - warmup, floor)


class LRSchedule:
    """The learning-rate schedule of one run, stepped by the training loop.

    Args:
        optimizer: the optimizer whose ``lr`` is scheduled (its base learning rate is ``lr``).
        kind: ``"plateau"`` or ``"cosine"``.
        lr: base learning rate.
        min_lr: the floor (plateau: training stops there; cosine: the final value).
        lr_factor: plateau: multiplier on a plateau.
        lr_patience: plateau: epochs without improvement before it applies.
        total_steps: cosine: optimizer steps of the whole run.
        warmup_steps: cosine: steps of linear warm-up at the start of ``total_steps``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        kind: str,
        lr: float,
        min_lr: float,
        lr_factor: float = 0.5,
        lr_patience: int = 5,
        total_steps: int = 0,
        warmup_steps: int = 0,
    ) -> None:
        if kind not in LR_SCHEDULES:
            raise ValueError(
                f"unknown learning-rate schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        if kind == "cosine" and total_steps < 1:
            raise ValueError(f"cosine schedule needs total_steps >= 1, got {total_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warm-up steps must be >= 0, got {warmup_steps}")
        if warmup_steps and kind != "cosine":
            raise ValueError("a learning-rate warm-up needs the cosine schedule")
        if warmup_steps >= max(total_steps, 1):
            raise ValueError(
                f"warm-up of {warmup_steps} steps leaves nothing of the run's {total_steps} steps"
            )
        self.kind = kind
        self.min_lr = min_lr
        self.optimizer = optimizer
        if kind == "plateau":
            self._sched: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=lr_factor, patience=lr_patience, min_lr=min_lr
            )
        else:
            floor = min(min_lr / lr, 1.0) if lr > 0 else 1.0
            self._sched = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: warmup_cosine_factor(s, total_steps, floor, warmup_steps)
            )

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def after_step(self) -> None:
        """Call after every ``optimizer.step()``."""
        if self.kind == "cosine":
            self._sched.step()

    def after_epoch(self, val_mae: float) -> None:
        """Call once per epoch with the validation MAE."""
        if self.kind == "plateau":
            self._sched.step(val_mae)

    def exhausted(self) -> bool:
        """Plateau only: the learning rate has fallen to ``min_lr`` (training should stop)."""
        return self.kind == "plateau" and self.lr <= self.min_lr * 1.0001

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        kind = state.pop("kind", "plateau")  # checkpoints written before cosine existed
        if kind != self.kind:
            raise ValueError(
                f"saved learning-rate schedule is {kind!r}, this run uses {self.kind!r}"
            )
        self._sched.load_state_dict(state)
