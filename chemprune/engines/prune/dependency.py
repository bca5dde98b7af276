"""Find output-channel groups of feed-forward networks by tracing them with ``torch.fx``.

From each Linear/Conv producer, the traced graph is followed through channel-preserving
operations (activations with ``f(0) = 0``, dropout, pooling, BatchNorm, flatten) to the consumer
layers whose input columns the channels feed. A producer whose channels reach anything else
(a residual addition, a concatenation, the model output) is left out: removing its channels
would change the result. Models that ``torch.fx`` cannot trace (data-dependent control flow,
e.g. SchNet) declare their groups explicitly instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from chemprune.engines.prune.groups import PruningGroup, Slot

__all__ = ["channel_groups", "input_groups"]

_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PASS_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_PASS_FUNCTIONS = {
    F.relu, torch.relu, F.leaky_relu, F.gelu, F.silu, torch.tanh, F.tanh, F.dropout,
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool2d, F.softplus,
}  # fmt: skip


def _zero_preserving(fn) -> bool:
    """True if the elementwise function maps 0 to 0 (so a zeroed channel stays zero)."""
    try:
        return bool(torch.all(fn(torch.zeros(1, 1)) == 0))
    except Exception:
        return False


def _is_pass_module(module: nn.Module) -> bool:
    if isinstance(module, _PASS_MODULES):
        return True
    if isinstance(module, _PRODUCERS + _NORMS) or list(module.parameters(recurse=False)):
        return False
    # parameter-free elementwise activations (ReLU, ShiftedSoftplus, ...)
    return len(list(module.children())) == 0 and _zero_preserving(module)


def _shape(node: fx.Node) -> torch.Size | None:
    meta = node.meta.get("tensor_meta")
    return getattr(meta, "shape", None)


def _flatten_repeat(node: fx.Node, src: fx.Node) -> int | None:
    """Units' repeat factor after a flatten-like node, or None if channels get mixed."""
    sin, sout = _shape(src), _shape(node)
    if sin is None or sout is None or len(sin) < 2:
        return None
    if len(sout) == 2 and sout[1] == math.prod(sin[1:]):
        return math.prod(sin[2:]) if len(sin) > 2 else 1
    return None


def channel_groups(
    model: nn.Module, example_input: Tensor | tuple[Tensor, ...], *, exclude: Iterable[str] = ()
) -> list[PruningGroup]:
    """Output-channel groups of every prunable Linear/Conv layer of ``model``.

    Args:
        model: a traceable feed-forward network.
        example_input: an input batch (shapes are propagated to resolve flatten sizes).
        exclude: names of producer layers to leave out.
    """
    gm = fx.symbolic_trace(model)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with torch.no_grad():
        ShapeProp(gm).propagate(*args)
    modules = dict(gm.named_modules())
    skip = set(exclude)
    groups: list[PruningGroup] = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or node.target in skip:
            continue
        prod = modules[node.target]
        if not isinstance(prod, _PRODUCERS) or getattr(prod, "groups", 1) != 1:
            continue
        size = prod.out_features if isinstance(prod, nn.Linear) else prod.out_channels
        mask = [Slot(node.target, "weight", 0)]
        if prod.bias is not None:
            mask.append(Slot(node.target, "bias", 0))
        extra: list[Slot] = []
        if not _follow(node, 1, modules, mask, extra):
            continue
        groups.append(
            PruningGroup(
                name=node.target,
                kind="channel",
                size=size,
                mask_slots=tuple(mask),
                slots=tuple(mask + extra),
                tags=(type(prod).__name__,),
            )
        )
    return groups


def _follow(node: fx.Node, repeat: int, modules, mask: list[Slot], extra: list[Slot]) -> bool:
    """Walk the users of ``node``; collect slots; False if a channel reaches a forbidden op."""
    if not node.users:
        return False
    for user in node.users:
        if user.op == "call_module":
            mod = modules[user.target]
            if isinstance(mod, nn.Linear):
                if user.args[0] is not node:
                    return False
                extra.append(Slot(user.target, "weight", 1, repeat))
                continue
            if isinstance(mod, _PRODUCERS):
                if getattr(mod, "groups", 1) != 1 or repeat != 1 or user.args[0] is not node:
                    return False
                extra.append(Slot(user.target, "weight", 1, 1))
                continue
            if isinstance(mod, _NORMS):
                if repeat != 1:
                    return False
                if mod.affine:
                    mask += [Slot(user.target, "weight", 0), Slot(user.target, "bias", 0)]
                if mod.track_running_stats:
                    extra += [
                        Slot(user.target, "running_mean", 0),
                        Slot(user.target, "running_var", 0),
                    ]
                if not _follow(user, repeat, modules, mask, extra):
                    return False
                continue
            if isinstance(mod, nn.Flatten):
                r = _flatten_repeat(user, node) if mod.start_dim == 1 else None
                if r is None or not _follow(user, repeat * r, modules, mask, extra):
                    return False
                continue
            if _is_pass_module(mod):
                if not _follow(user, repeat, modules, mask, extra):
                    return False
                continue
            return False
        if user.op == "call_function":
            if user.target in _PASS_FUNCTIONS and user.args[0] is node:
                if user.target is F.softplus:  # softplus(0) != 0
                    return False
                if not _follow(user, repeat, modules, mask, extra):
                    return False
                continue
            if user.target is torch.flatten:
                start = user.args[1] if len(user.args) > 1 else user.kwargs.get("start_dim", 0)
                r = _flatten_repeat(user, node) if start == 1 else None
                if r is None or not _follow(user, repeat * r, modules, mask, extra):
                    return False
                continue
            return False  # indexing, arithmetic, concatenation...: channels get mixed
        if user.op == "call_method" and user.target in ("view", "reshape", "flatten"):
            r = _flatten_repeat(user, node)
            if r is None or not _follow(user, repeat * r, modules, mask, extra):
                return False
            continue
        if user.op == "call_method" and user.target in ("relu", "tanh"):
            if not _follow(user, repeat, modules, mask, extra):
                return False
            continue
        return False
    return True


def input_groups(model: nn.Module, layers: Iterable[str]) -> list[PruningGroup]:
    """Input-feature groups (weight columns) of the named Linear/Conv layers (e.g. pixels)."""
    groups = []
    for name in layers:
        mod = model.get_submodule(name)
        if not isinstance(mod, _PRODUCERS):
            raise TypeError(f"{name} is a {type(mod).__name__}, not a Linear or Conv layer")
        size = mod.in_features if isinstance(mod, nn.Linear) else mod.in_channels
        groups.append(
            PruningGroup(
                name=f"{name}:input",
                kind="input",
                size=size,
                mask_slots=(Slot(name, "weight", 1),),
                tags=(type(mod).__name__,),
            )
        )
    return groups
