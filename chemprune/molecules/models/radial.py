"""SchNet's radial pieces: the Gaussian basis of a distance, the cosine cutoff and the shifted
softplus (what both the exact blocks and the tables built from them use)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GaussianRBF", "ShiftedSoftplus", "cosine_cutoff"]

_LOG2 = math.log(2.0)


class ShiftedSoftplus(nn.Module):
    """``softplus(x) - log(2)``, zero at the origin."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = _LOG2

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x) - self.shift


class GaussianRBF(nn.Module):
    """Gaussians ``exp(-(d - mu_k)^2 / (2 delta^2))`` on an even grid ``mu_k`` in ``[start, stop]``.

    ``delta`` is the grid spacing, as in PyG's ``GaussianSmearing`` and schnetpack's
    ``GaussianRBF``.
    """

    def __init__(self, *, start: float = 0.0, stop: float = 5.0, num_gaussians: int = 50) -> None:
        super().__init__()
        if num_gaussians < 2:
            raise ValueError(f"num_gaussians must be >= 2, got {num_gaussians}")
        if not stop > start:
            raise ValueError(f"need stop > start, got start={start}, stop={stop}")
        offset = torch.linspace(start, stop, num_gaussians)
        self.register_buffer("offset", offset)
        self.coeff = -0.5 / float(offset[1] - offset[0]) ** 2
        self.num_gaussians = num_gaussians

    def forward(self, dist: Tensor) -> Tensor:
        diff = dist.unsqueeze(-1) - self.offset
        return torch.exp(self.coeff * diff * diff)

    def extra_repr(self) -> str:
        return (
            f"start={float(self.offset[0]):g}, stop={float(self.offset[-1]):g}, "
            f"num_gaussians={self.num_gaussians}"
        )


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    """``0.5 (cos(pi d / r_c) + 1)`` inside the cutoff, 0 outside."""
    c = 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0)
    return c * (dist < cutoff).to(c.dtype)
