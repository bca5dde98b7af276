"""Differentiable architecture search (DARTS) on plain ``torch.nn.Module``s.

Supernets are built from :class:`MixedOp` edges (:mod:`.mixed`); the engines
(:data:`NAS_ENGINES`: ``darts``, ``darts_minus``) own the bilevel training step
(:mod:`.base`, :mod:`.darts`) and derive an ordinary module at the end.
"""

from chemprune.engines.nas.base import NAS_ENGINES, ArchitectureSearch, register_search
from chemprune.engines.nas.darts import Darts, DartsMinus
from chemprune.engines.nas.mixed import (
    MixedOp,
    Zero,
    arch_parameters,
    derive_modules,
    genotype,
    mixed_ops,
)

__all__ = [
    "NAS_ENGINES", "ArchitectureSearch", "register_search", "Darts", "DartsMinus",
    "MixedOp", "Zero", "arch_parameters", "derive_modules", "genotype", "mixed_ops",
]  # fmt: skip
