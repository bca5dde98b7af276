"""Masks applied through ``torch.nn.utils.parametrize``: ``weight = original * mask``.

The mask is a buffer of the parametrization, so it is saved in ``state_dict`` (keys
``<module>.parametrizations.<param>.0.mask``) and :func:`load_masked_state_dict` restores a masked
model from such a state dict. Masked entries stay zero through any number of optimizer steps,
because the optimizer updates ``original`` and the model only ever sees ``original * mask``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from chemprune.engines.prune.groups import PruningGroup, Slot, get_param

__all__ = [
    "Mask",
    "expand_unit_mask",
    "group_masks",
    "apply_masks",
    "get_masks",
    "remove_masks",
    "load_masked_state_dict",
    "alive_units",
]


class Mask(nn.Module):
    """Parametrization multiplying a tensor by a fixed 0/1 mask buffer.

    With ``straight_through=True`` the backward pass is the identity (Dynamic Network Surgery):
    pruned weights keep receiving the gradient of the masked weight, so they can grow back when
    the mask is recomputed. The forward value is ``x * mask`` either way.
    """

    def __init__(self, mask: Tensor, straight_through: bool = False) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().clone())
        self.straight_through = straight_through

    def forward(self, x: Tensor) -> Tensor:
        if self.straight_through:
            return x + (x * self.mask - x).detach()
        return x * self.mask

    def extra_repr(self) -> str:
        return f"density={float(self.mask.float().mean()):.4f}"


def expand_unit_mask(keep: Tensor, slot: Slot, shape: torch.Size) -> Tensor:
    """Broadcast a ``[units]`` keep-vector along ``slot.dim`` of a tensor of ``shape``."""
    per_index = keep.repeat_interleave(slot.repeat) if slot.repeat > 1 else keep
    if per_index.numel() != shape[slot.dim]:
        raise ValueError(
            f"{slot.qualname}: {per_index.numel()} mask entries for size {shape[slot.dim]} "
            f"along dim {slot.dim}"
        )
    view = [1] * len(shape)
    view[slot.dim] = -1
    return per_index.reshape(view).expand(shape)


def group_masks(
    model: nn.Module,
    keep: Mapping[PruningGroup, Tensor],
    *,
    base: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Parameter masks (qualified name -> 0/1 tensor) from per-group keep vectors.

    Masks of several groups on one parameter multiply (a row and a column both switch off).
    """
    masks: dict[str, Tensor] = {k: v.clone() for k, v in (base or {}).items()}
    for group, k in keep.items():
        for slot in group.mask_slots:
            p = get_param(model, slot, original=True)
            if group.kind == "weight":
                if k.shape != p.shape:
                    raise ValueError(
                        f"{group.name}: keep mask {tuple(k.shape)} != {tuple(p.shape)}"
                    )
                m = k.to(device=p.device, dtype=p.dtype)
            else:
                if k.numel() != group.size:
                    raise ValueError(
                        f"{group.name}: {k.numel()} keep entries for {group.size} units"
                    )
                m = expand_unit_mask(k.to(device=p.device, dtype=p.dtype), slot, p.shape)
            name = slot.qualname
            masks[name] = masks[name] * m if name in masks else m.clone()
    return masks


def _split(qualname: str) -> tuple[str, str]:
    module, _, param = qualname.rpartition(".")
    return module, param


def apply_masks(
    model: nn.Module, masks: Mapping[str, Tensor], *, straight_through: bool | None = None
) -> None:
    """Set the masks of the named parameters (registering the parametrization when needed).

    ``straight_through`` sets the backward rule of the masks touched (``None``: keep it).
    """
    for qualname, mask in masks.items():
        module_name, param = _split(qualname)
        module = model.get_submodule(module_name) if module_name else model
        existing = None
        if parametrize.is_parametrized(module, param):
            existing = next(
                (p for p in module.parametrizations[param] if isinstance(p, Mask)), None
            )
        if existing is not None:
            if existing.mask.shape != mask.shape:
                raise ValueError(
                    f"{qualname}: mask shape {tuple(mask.shape)} != {tuple(existing.mask.shape)}"
                )
            existing.mask.copy_(mask)
            if straight_through is not None:
                existing.straight_through = straight_through
            continue
        current = getattr(module, param)
        if current.shape != mask.shape:
            raise ValueError(
                f"{qualname}: mask shape {tuple(mask.shape)} != {tuple(current.shape)}"
            )
        parametrize.register_parametrization(
            module, param, Mask(mask.to(current.dtype), bool(straight_through))
        )


def get_masks(model: nn.Module) -> dict[str, Tensor]:
    """Current masks by qualified parameter name."""
    out = {}
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for param, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, Mask):
                    out[f"{name}.{param}" if name else param] = p.mask.clone()
    return out


def remove_masks(model: nn.Module) -> None:
    """Bake ``original * mask`` into plain parameters and drop the parametrizations."""
    for _, module in list(model.named_modules()):
        if parametrize.is_parametrized(module):
            for param in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, param, leave_parametrized=True)


def load_masked_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], strict: bool = True):
    """Load a state dict saved from a masked model into an unmasked copy of the architecture."""
    suffix = ".0.mask"
    for key, value in state_dict.items():
        if ".parametrizations." in key and key.endswith(suffix):
            owner, rest = (
                key.split(".parametrizations.", 1)
                if not key.startswith("parametrizations.")
                else ("", key[len("parametrizations.") :])
            )
            param = rest[: -len(suffix)]
            apply_masks(model, {f"{owner}.{param}" if owner else param: value})
    return model.load_state_dict(state_dict, strict=strict)


def alive_units(
    model: nn.Module, group: PruningGroup, masks: Mapping[str, Tensor] | None = None
) -> Tensor:
    """Bool ``[units]`` (or weight-shaped for ``weight`` groups): units not masked off.

    ``masks`` (from :func:`get_masks`) avoids walking the model again for each group.
    """
    if masks is None:
        masks = get_masks(model)
    if group.kind == "weight":
        slot = group.mask_slots[0]
        m = masks.get(slot.qualname)
        p = get_param(model, slot, original=True)
        return torch.ones_like(p, dtype=torch.bool) if m is None else m != 0
    device = get_param(model, group.mask_slots[0], original=True).device
    alive = torch.zeros(group.size, dtype=torch.bool, device=device)
    any_mask = False
    for slot in group.mask_slots:
        m = masks.get(slot.qualname)
        if m is None:
            return torch.ones(group.size, dtype=torch.bool, device=device)
        any_mask = True
        dims = [d for d in range(m.dim()) if d != slot.dim]
        per_index = (m != 0).any(dim=dims) if dims else m != 0
        per_unit = per_index.reshape(group.size, slot.repeat).any(dim=1)
        alive |= per_unit
    return alive if any_mask else torch.ones(group.size, dtype=torch.bool, device=device)
