"""Shared pieces of the distillation commands: errors, teacher checkpoints, atomic writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reaction_nmt import backend

__all__ = ["DistillError", "resolve_checkpoint"]


class DistillError(backend.BackendError):
    """Distillation cannot run (bad teacher, vocabulary mismatch, bad options)."""


def resolve_checkpoint(teacher: Path) -> Path:
    """A checkpoint file, or a run folder's last ``model_step_N.pt``."""
    teacher = Path(teacher)
    if teacher.is_dir():
        found = backend.checkpoints(teacher)
        if not found:
            raise DistillError(f"teacher folder {teacher} has no model_step_N.pt checkpoint")
        return found[-1]
    if not teacher.exists():
        raise DistillError(f"teacher {teacher} does not exist")
    return teacher


def _checked(check: Callable[[float], float], value: float) -> float:
    try:
        return check(value)
    except ValueError as err:
        raise DistillError(str(err)) from None
