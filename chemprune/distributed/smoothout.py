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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["SmoothOut"]


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

    def _bound(self, w: Tensor) -> Tensor | float:
        if not self.adaptive:
            return self.amplitude
        if w.dim() >= 2:
            norms = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            return self.amplitude * norms.view(-1, *([1] * (w.dim() - 1)))
        return self.amplitude * float(w.detach().pow(2).mean().sqrt()) if w.numel() else 0.0

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
        out = []
        for p in model.parameters():
            u = torch.rand(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
            out.append((2 * u - 1) * self._bound(p))
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
