"""Toy supernets for the search engines' tests."""

from __future__ import annotations

import torch
from torch import nn

from chemprune.engines.nas import MixedOp, Zero


class Square(nn.Module):
    """``lin(x * x)``: the only candidate that can fit an even function of ``x``."""

    cost = 2.0

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        return self.lin(x * x)


class Affine(nn.Linear):
    cost = 1.0


class Skip(nn.Identity):
    cost = 0.0


def edge(d: int = 4) -> MixedOp:
    return MixedOp({"linear": Affine(d, d), "square": Square(d), "skip": Skip(), "none": Zero()})


class ToyNet(nn.Module):
    """Two mixed edges in a chain."""

    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.first = edge(d)
        self.second = edge(d)

    def forward(self, x):
        return self.second(self.first(x))


def mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def even_task(n: int, d: int = 4, seed: int = 0):
    """``y = A (x * x)``: the square operation is the right one on a single edge."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(123)) / d**0.5
    x = torch.randn(n, d, generator=g)
    return x, (x * x) @ a.T
