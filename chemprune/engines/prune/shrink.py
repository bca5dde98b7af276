"""Physically remove pruned units: a smaller dense model with the masked model's outputs.

:func:`shrink` bakes the masks into the weights, then slices every slot of each structured group
down to its live units (producer rows and bias, norm entries, consumer columns) and updates the
layers' size attributes. :func:`shape_manifest` / :func:`resize_to` record and restore the new
shapes so a saved shrunk model loads into a freshly built (full-size) architecture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from chemprune.engines.prune.groups import PruningGroup, Slot
from chemprune.engines.prune.masks import alive_units, get_masks, remove_masks

__all__ = ["shrink", "shape_manifest", "resize_to", "sync_module_sizes"]


def sync_module_sizes(module: nn.Module) -> None:
    """Update size attributes (``in_features``, ``out_channels``, ...) from the tensors."""
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.conv._ConvNd):
        module.out_channels = module.weight.shape[0]
        module.in_channels = module.weight.shape[1] * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        ref = module.weight if module.affine else module.running_mean
        module.num_features = ref.shape[0]
    elif isinstance(module, nn.Embedding):
        module.num_embeddings, module.embedding_dim = module.weight.shape


def _set_tensor(module: nn.Module, name: str, value: Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad))
    else:
        module._buffers[name] = value.detach().clone()


def _index_slot(model: nn.Module, slot: Slot, keep: Tensor) -> None:
    module = model.get_submodule(slot.module) if slot.module else model
    value = getattr(module, slot.param)
    per_index = keep.repeat_interleave(slot.repeat) if slot.repeat > 1 else keep
    if per_index.numel() != value.shape[slot.dim]:
        raise ValueError(
            f"{slot.qualname}: {per_index.numel()} units for size {value.shape[slot.dim]}"
        )
    idx = torch.nonzero(per_index).flatten()
    _set_tensor(module, slot.param, value.index_select(slot.dim, idx))
    sync_module_sizes(module)


@torch.no_grad()
def shrink(model: nn.Module, groups: Sequence[PruningGroup]) -> dict[str, tuple[int, int]]:
    """Remove masked-off units of the structured groups in place.

    Returns ``{group name: (units before, units after)}``.

    Raises:
        ValueError: a group would lose every unit (the layer would vanish).
    """
    structured = [g for g in groups if g.kind in ("channel", "input")]
    masks = get_masks(model)
    keep = {g.name: alive_units(model, g, masks) for g in structured}
    for g in structured:
        if not bool(keep[g.name].any()):
            raise ValueError(f"group {g.name!r}: every unit is pruned; keep at least one")
    # a unit whose mask slots are zero contributes nothing: bake, then slice
    remove_masks(model)
    report = {}
    for g in structured:
        k = keep[g.name]
        report[g.name] = (g.size, int(k.sum()))
        if bool(k.all()):
            continue
        for slot in g.slots:
            _index_slot(model, slot, k)
    return report


def shape_manifest(model: nn.Module) -> dict[str, list[int]]:
    """Shapes of every parameter and buffer (qualified name -> shape)."""
    out = {k: list(v.shape) for k, v in model.named_parameters()}
    out.update({k: list(v.shape) for k, v in model.named_buffers()})
    return out


@torch.no_grad()
def resize_to(model: nn.Module, shapes: Mapping[str, Sequence[int]]) -> nn.Module:
    """Give a freshly built model the recorded (shrunk) shapes, ready for ``load_state_dict``."""
    for qualname, shape in shapes.items():
        module_name, _, param = qualname.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        current = getattr(module, param, None)
        if not isinstance(current, Tensor):
            raise KeyError(f"model has no tensor {qualname!r} to resize")
        if list(current.shape) != list(shape):
            _set_tensor(module, param, current.new_zeros(tuple(shape)))
            sync_module_sizes(module)
    return model
