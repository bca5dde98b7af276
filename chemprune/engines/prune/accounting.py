"""Sparsity, parameter and FLOP (multiply-accumulate) accounting per layer and for a model.

MACs are measured with forward hooks on a real input, so layers applied per edge or per atom
(SchNet) are counted with their actual number of rows. "Effective" MACs count only nonzero
weights (what a sparse kernel would execute); dense MACs are what the dense layer executes.
A module that is not a layer but does work per output row declares it as ``row_macs`` (an int;
e.g. a tabulated filter's interpolation, :class:`chemprune.molecules.models.tabulated.TabulatedFilter`)
and is counted as ``rows * row_macs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["LayerStats", "layer_stats", "summarize", "count_parameters"]

_LAYERS = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding)


@dataclass
class LayerStats:
    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    macs: int = 0
    effective_macs: int = 0

    @property
    def density(self) -> float:
        return self.nonzero / self.params if self.params else 1.0


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, nonzero)`` over the effective (masked) parameters."""
    total = nonzero = 0
    for _, module in model.named_modules():
        for name, _ in list(module.named_parameters(recurse=False)):
            if name == "original":
                continue
            value = getattr(module, name)
            total += value.numel()
            nonzero += int(torch.count_nonzero(value))
        if hasattr(module, "parametrizations"):
            for name in module.parametrizations:
                value = getattr(module, name)
                total += value.numel()
                nonzero += int(torch.count_nonzero(value))
    return total, nonzero


@torch.no_grad()
def layer_stats(
    model: nn.Module, run: Callable[[nn.Module], Any] | None = None
) -> list[LayerStats]:
    """Per-layer statistics; with ``run(model)`` (one forward pass) MACs are measured too."""
    stats: dict[str, LayerStats] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, _LAYERS):
            w = mod.weight
            n = w.numel() + (mod.bias.numel() if getattr(mod, "bias", None) is not None else 0)
            nz = int(torch.count_nonzero(w)) + (
                int(torch.count_nonzero(mod.bias)) if getattr(mod, "bias", None) is not None else 0
            )
            stats[name] = LayerStats(name, type(mod).__name__, tuple(w.shape), n, nz)
        elif isinstance(getattr(mod, "row_macs", None), int):
            stats[name] = LayerStats(name, type(mod).__name__, (), 0, 0)
    if run is not None:
        hooks = []

        def make_hook(name: str):
            def hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                s = stats[name]
                if not isinstance(mod, _LAYERS):  # declares its work per output row
                    rows = output.numel() // max(output.shape[-1], 1)
                    s.macs += rows * mod.row_macs
                    s.effective_macs += rows * mod.row_macs
                    return
                w = mod.weight
                if isinstance(mod, nn.Linear):
                    rows = output.numel() // max(output.shape[-1], 1)
                    s.macs += rows * w.numel()
                    s.effective_macs += rows * int(torch.count_nonzero(w))
                elif isinstance(mod, nn.modules.conv._ConvNd):
                    positions = output.numel() // max(output.shape[1], 1)
                    per_pos = w.numel() // w.shape[0]
                    s.macs += positions * per_pos * w.shape[0] // 1
                    s.effective_macs += positions * int(torch.count_nonzero(w)) // 1

            return hook

        for name, mod in model.named_modules():
            if name in stats and not isinstance(mod, nn.Embedding):
                hooks.append(mod.register_forward_hook(make_hook(name)))
        try:
            run(model)
        finally:
            for h in hooks:
                h.remove()
    return list(stats.values())


def summarize(model: nn.Module, run: Callable[[nn.Module], Any] | None = None) -> dict[str, Any]:
    """Whole-model totals: parameters, nonzero parameters, density, MACs (dense and effective)."""
    layers = layer_stats(model, run)
    total, nonzero = count_parameters(model)
    return {
        "params": total,
        "nonzero_params": nonzero,
        "density": nonzero / total if total else 1.0,
        "compression": total / nonzero if nonzero else float("inf"),
        "macs": sum(s.macs for s in layers),
        "effective_macs": sum(s.effective_macs for s in layers),
        "layers": [asdict(s) | {"density": s.density} for s in layers],
    }
