"""SmoothOut (Wen et al., 2018): gradients taken at randomly perturbed weights.

Before forward/backward every parameter gets uniform noise ``U(-a, a)``; after backward the
original weights are copied back, so the optimizer applies the perturbed-point gradient to the
unperturbed weights. Adaptive SmoothOut scales the amplitude per filter: ``a_j = a * ||w_j||``
for row ``j`` of a weight with two or more dimensions, ``a * RMS(w)`` for vectors and scalars.

With DDP each rank draws its own noise (the averaged gradient then averages over more
perturbations). ``chunk`` N > 0 draws again for every N molecules of a rank's batch, as the
authors' code does for the "mini-mini-batches" (ghost batches) of a large batch: the step's
gradient then averages the perturbed-point gradients of several draws at no extra compute.
Draws depend only on ``(seed, rank, step, piece)``, so resumed runs are exact.

``schedule`` changes the amplitude over the run as the authors' ``--smoothing-type`` does
(``amplitude_factor``): ``constant``; ``anneal``, ``a / sqrt((1 + t)^0.55)`` at step ``t`` (the
annealing of Neelakantan et al.'s gradient noise, applied to the weights); ``tanh``, a ramp from
~0 to ``a`` centred at the run's middle, ``a (1 + tanh(10 (t / T - 1/2))) / 2`` over ``T`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["SMOOTHOUT_SCHEDULES", "SmoothOut", "amplitude_factor"]

SMOOTHOUT_SCHEDULES = ("constant", "anneal", "tanh")
ANNEAL_INDEX = 0.55  # the authors' --anneal-index default
TANH_SCALE = 10.0  # the authors' --tanh-scale default


def amplitude_factor(schedule: str, step: int, total_steps: int = 0) -> float:
    """Multiplier of the SmoothOut amplitude at optimizer step ``step`` (0-based) of a run of
    ``total_steps`` steps (needed by ``tanh`` only)."""
    if schedule == "constant":
        return 1.0
    if schedule == "anneal":
        return (1.0 + step) ** (-ANNEAL_INDEX / 2)
    if schedule == "tanh":
        if total_steps <= 0:
            raise ValueError("SmoothOut schedule 'tanh' needs the run's total_steps (> 0)")
        return 0.5 * (1.0 + math.tanh(TANH_SCALE * (step / total_steps - 0.5)))
    raise ValueError(
        f"unknown SmoothOut schedule {schedule!r}; choose one of {', '.join(SMOOTHOUT_SCHEDULES)}"
    )


class SmoothOut:
    """Weight perturbation around forward/backward (``amplitude`` 0: does nothing)."""

    def __init__(
        self,
        *,
        amplitude: float,
        adaptive: bool = False,
        seed: int = 0,
        rank: int = 0,
        chunk: int = 0,
        schedule: str = "constant",
        total_steps: int = 0,
    ) -> None:
        if amplitude < 0:
            raise ValueError(f"SmoothOut amplitude must be >= 0, got {amplitude}")
        if chunk < 0:
            raise ValueError(f"SmoothOut chunk must be >= 0 molecules, got {chunk}")
        self.amplitude = float(amplitude)
        self.chunk = int(chunk)
        self.adaptive = bool(adaptive)
        self.seed = int(seed)
        self.rank = int(rank)
        self.schedule = schedule
        self.total_steps = int(total_steps)
        amplitude_factor(schedule, 0, total_steps)  # an unknown schedule fails here, not later

    def amplitude_at(self, step: int) -> float:
        """The amplitude at optimizer step ``step`` (``amplitude`` times the schedule)."""
        return self.amplitude * amplitude_factor(self.schedule, step, self.total_steps)

    def _bound(self, w: Tensor, a: float) -> Tensor | float:
        if not self.adaptive:
            return a
        if w.dim() >= 2:
            norms = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            return a * norms.view(-1, *([1] * (w.dim() - 1)))
        return a * float(w.detach().pow(2).mean().sqrt()) if w.numel() else 0.0

    def pieces(self, batch: Tensor) -> list[Tensor]:
        """``batch`` (this rank's molecule indices) in the parts that get one draw each."""
        if self.amplitude == 0 or self.chunk == 0:
            return [batch]
        return list(torch.split(batch, self.chunk))

    def noise(self, model: nn.Module, *, step: int, piece: int = 0) -> list[Tensor]:
        """The perturbation of each parameter at ``step`` for part ``piece`` of the batch (same
        order as ``parameters()``)."""
        key = (self.seed * 1_000_003 + int(step)) * 65_537 + self.rank
        if piece:
            key = key * 1_000_033 + int(piece)
        gen = torch.Generator().manual_seed(key % (2**63 - 1))
        a = self.amplitude_at(step)
        out = []
        for p in model.parameters():
            u = torch.rand(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
            out.append((2 * u - 1) * self._bound(p, a))
        return out

    @contextmanager
    def perturbed(self, model: nn.Module, *, step: int, piece: int = 0) -> Iterator[None]:
        """Weights perturbed inside the block, restored exactly on exit (gradients kept)."""
        if self.amplitude == 0:
            yield
            return
        params = list(model.parameters())
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, n in zip(params, self.noise(model, step=step, piece=piece), strict=True):
                p.add_(n)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
