"""Pruning groups: which parameter slices are removed together, at which granularity.

A :class:`Slot` names one axis of one parameter (``fc1.weight`` along dim 0). A
:class:`PruningGroup` couples slots whose index ``k`` belongs to the same unit:

* ``kind="weight"``: single weights of one parameter (unstructured; one slot, any shape);
* ``kind="channel"``: output channels/filters: the producer's weight rows and bias, the
  following norm layer's entries (masked), and the consumers' input columns (sliced on shrink);
* ``kind="input"``: input channels/features of a layer (its weight columns), e.g. pixels of the
  first layer;
* ``kind="block"``: whole parameters pruned as one unit (size 1).

``mask_slots`` are zeroed to switch a unit off; ``slots`` (a superset) are sliced when the model
is physically shrunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

__all__ = ["Slot", "PruningGroup", "weight_groups", "get_param", "KINDS"]

KINDS = ("weight", "channel", "input", "block")


@dataclass(frozen=True)
class Slot:
    """Axis ``dim`` of parameter/buffer ``module.param``; each unit spans ``repeat`` indices."""

    module: str
    param: str
    dim: int = 0
    repeat: int = 1

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.param}" if self.module else self.param


@dataclass(frozen=True)
class PruningGroup:
    """Coupled parameter slices pruned together (see the module docstring).

    Attributes:
        name: unique name (used for per-group thresholds and reports).
        kind: one of ``weight``, ``channel``, ``input``, ``block``.
        size: number of units (channels, input features, or weights for ``weight``).
        mask_slots: slices zeroed to switch a unit off (scored by the engines).
        slots: every slice that shrinking removes (defaults to ``mask_slots``).
        tags: free labels for grouping strategies (e.g. the layer type).
    """

    name: str
    kind: str
    size: int
    mask_slots: tuple[Slot, ...]
    slots: tuple[Slot, ...] = ()
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"group {self.name!r}: unknown kind {self.kind!r}; use one of {KINDS}")
        if self.size < 1:
            raise ValueError(f"group {self.name!r} has no units")
        if not self.mask_slots:
            raise ValueError(f"group {self.name!r} has nothing to mask")
        if not self.slots:
            object.__setattr__(self, "slots", tuple(self.mask_slots))
        if self.kind == "weight" and len(self.mask_slots) != 1:
            raise ValueError(f"weight group {self.name!r} must have exactly one slot")

    @property
    def structured(self) -> bool:
        return self.kind != "weight"


def get_param(model: nn.Module, slot: Slot, *, original: bool = False) -> Tensor:
    """The tensor a slot refers to (the effective, masked value unless ``original``)."""
    try:
        module = model.get_submodule(slot.module) if slot.module else model
    except AttributeError:
        raise KeyError(f"model has no module {slot.module!r}") from None
    if original and hasattr(module, "parametrizations") and slot.param in module.parametrizations:
        return module.parametrizations[slot.param].original
    value = getattr(module, slot.param, None)
    if not isinstance(value, Tensor):
        raise KeyError(f"module {slot.module!r} has no tensor {slot.param!r}")
    return value


def weight_groups(
    model: nn.Module,
    *,
    types: Sequence[type[nn.Module]] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d),
    exclude: Iterable[str] = (),
) -> list[PruningGroup]:
    """One unstructured group per ``weight`` of every layer of the given types."""
    skip = set(exclude)
    groups = []
    for name, module in model.named_modules():
        if name in skip or not isinstance(module, tuple(types)):
            continue
        w = get_param(model, Slot(name, "weight"))
        groups.append(
            PruningGroup(
                name=name,
                kind="weight",
                size=w.numel(),
                mask_slots=(Slot(name, "weight"),),
                tags=(type(module).__name__,),
            )
        )
    if not groups:
        raise ValueError(
            f"{type(model).__name__} has no prunable layers (looked for "
            f"{', '.join(t.__name__ for t in types)})"
        )
    return groups
