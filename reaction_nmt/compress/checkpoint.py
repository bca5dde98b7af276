"""Between an in-memory OpenNMT-py model (possibly masked or shrunk) and checkpoint dicts.

:func:`export_checkpoint` writes the model's effective weights (masks applied) under the keys of
an OpenNMT-py checkpoint, keeping tensors shared between keys (tied embeddings) shared;
:func:`load_weights` copies a checkpoint's tensors into a model, into the unmasked ``original``
of masked parameters; :func:`save_atomic` writes through a temporary file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["export_checkpoint", "load_weights", "save_atomic", "effective", "param_ref"]


def _split(key: str) -> tuple[str, str]:
    module, _, name = key.rpartition(".")
    return module, name


def param_ref(model: nn.Module, key: str, *, original: bool = False) -> Tensor:
    """The tensor behind a checkpoint key (the masked value unless ``original``)."""
    module_name, name = _split(key)
    module = model.get_submodule(module_name) if module_name else model
    if original and hasattr(module, "parametrizations") and name in module.parametrizations:
        return module.parametrizations[name].original
    value = getattr(module, name)
    if not isinstance(value, Tensor):
        raise KeyError(f"model has no tensor {key!r}")
    return value


def effective(model: nn.Module, key: str) -> Tensor:
    return param_ref(model, key).detach()


@torch.no_grad()
def export_checkpoint(model: nn.Module, template: dict, *, opt=None) -> dict:
    """``template`` (an OpenNMT-py checkpoint) with the model's effective weights."""
    cache: dict[int, Tensor] = {}

    def value(key: str) -> Tensor:
        ref = param_ref(model, key, original=True)
        if id(ref) not in cache:
            cache[id(ref)] = effective(model, key).clone().cpu()
        return cache[id(ref)]

    out = {k: v for k, v in template.items() if k not in ("model", "generator", "opt")}
    out["model"] = {k: value(k) for k in template["model"]}
    out["generator"] = {k: value(f"generator.{k}") for k in (template["generator"] or {})}
    out["opt"] = template["opt"] if opt is None else opt
    return out


@torch.no_grad()
def load_weights(model: nn.Module, ckpt: dict) -> None:
    """Copy a checkpoint's weights into ``model`` (into ``original`` where masked)."""
    items = list(ckpt["model"].items())
    items += [(f"generator.{k}", v) for k, v in (ckpt["generator"] or {}).items()]
    for key, t in items:
        ref = param_ref(model, key, original=True)
        if ref.shape != t.shape:
            raise ValueError(f"{key}: checkpoint shape {tuple(t.shape)} != {tuple(ref.shape)}")
        ref.copy_(t)


def save_atomic(obj, path: Path) -> int:
    """``torch.save`` through a temporary file (:func:`chemprune.common.atomic.atomic_save`), a
    checkpoint dict with its weights' checksum (:mod:`reaction_nmt.integrity`); returns the file
    size in bytes."""
    from chemprune.common.atomic import atomic_save
    from reaction_nmt.integrity import stamp

    if isinstance(obj, dict) and "model" in obj:
        obj = stamp(obj)
    return atomic_save(obj, path).stat().st_size
