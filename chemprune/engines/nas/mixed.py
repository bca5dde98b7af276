"""Mixed operations: a softmax-weighted sum over candidate operations (DARTS' continuous
relaxation), with architecture parameters kept out of ``model.parameters()``.

::

    edge = MixedOp({"conv": Conv(), "skip": Identity(), "none": Zero()})
    y = edge(x)                          # sum_k softmax(alpha)_k * op_k(x)  (+ aux * x)
    edge.alpha                           # the edge's architecture parameters, own optimizer
    edge.chosen()                        # "conv": the argmax, operations marked none excluded
    edge.derive()                        # the chosen operation itself, no mixing left

``alpha`` is an ``nn.Parameter`` held outside the module's registered parameters (as
AutoPrune's gates are): the weight optimizer built from ``model.parameters()`` never sees it,
:func:`arch_parameters` collects every edge's ``alpha`` for the architecture optimizer, and
:meth:`MixedOp._save_to_state_dict` / ``_load_from_state_dict`` keep it in checkpoints.

An operation may carry a ``cost`` attribute (MACs, latency, ...): :meth:`MixedOp.expected_cost`
is the softmax-weighted cost, which a search engine can penalise. Operations with
``is_none = True`` (:class:`Zero`) stand for "no operation": they compete during the search
but are never chosen by :meth:`MixedOp.chosen` (DARTS excludes ``none`` when deriving).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MixedOp", "Zero", "arch_parameters", "mixed_ops", "derive_modules", "genotype"]


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like the first input (never derived)."""

    is_none = True
    cost = 0.0

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return torch.zeros_like(x)


class MixedOp(nn.Module):
    """Softmax-weighted sum of candidate operations with the same call signature.

    Args:
        ops: ``{name: module}``, at least two, at least one not marked ``is_none``.
        aux_skip: weight of an auxiliary skip connection added to the output (``x``, the first
            input), DARTS-' remedy against the collapse onto skip connections: the engine
            decays it to 0 over the search; 0 (the default) is plain DARTS.
    """

    def __init__(self, ops: Mapping[str, nn.Module], *, aux_skip: float = 0.0) -> None:
        super().__init__()
        if len(ops) < 2:
            raise ValueError(f"a mixed operation needs at least two candidates, got {list(ops)}")
        self.ops = nn.ModuleDict(ops)
        if all(getattr(op, "is_none", False) for op in self.ops.values()):
            raise ValueError("every candidate is a 'none' operation: nothing could be derived")
        # not registered: outside model.parameters(), trained by the architecture optimizer
        self.__dict__["alpha"] = nn.Parameter(1e-3 * torch.randn(len(ops)))
        self.aux_skip = float(aux_skip)

    @property
    def names(self) -> list[str]:
        return list(self.ops.keys())

    def weights(self) -> Tensor:
        return torch.softmax(self.alpha, dim=0)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        w = self.weights()
        out = None
        for k, op in enumerate(self.ops.values()):
            y = w[k] * op(*args, **kwargs)
            out = y if out is None else out + y
        if self.aux_skip:
            out = out + self.aux_skip * args[0]
        return out

    def expected_cost(self) -> Tensor:
        """``sum_k softmax(alpha)_k * cost_k`` (operations without ``cost`` count 0)."""
        costs = torch.tensor(
            [float(getattr(op, "cost", 0.0)) for op in self.ops.values()], dtype=self.alpha.dtype
        )
        return (self.weights() * costs).sum()

    def chosen(self) -> str:
        """The candidate with the largest ``alpha`` among those not marked ``is_none``."""
        allowed = [not getattr(op, "is_none", False) for op in self.ops.values()]
        scores = self.alpha.detach().masked_fill(~torch.tensor(allowed), float("-inf"))
        return self.names[int(scores.argmax())]

    def derive(self) -> nn.Module:
        """The chosen operation (the same module object, trained weights included)."""
        return self.ops[self.chosen()]

    # alpha travels with the module's state_dict, device and dtype
    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: ANN001
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "alpha"] = self.alpha if keep_vars else self.alpha.detach()

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):  # noqa: ANN001
        key = prefix + "alpha"
        if key in state_dict:
            value = state_dict[key]
            if value.shape != self.alpha.shape:
                errors.append(
                    f"{key}: {tuple(value.shape)} in the state dict, {tuple(self.alpha.shape)} "
                    "in the model (different candidate operations)"
                )
            else:
                with torch.no_grad():
                    self.alpha.copy_(value)
        elif strict:
            missing_keys.append(key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )
        if key in unexpected_keys:  # the base class does not know the unregistered alpha
            unexpected_keys.remove(key)

    def _apply(self, fn, recurse=True):  # noqa: ANN001
        super()._apply(fn, recurse)
        with torch.no_grad():
            moved = fn(self.alpha.data)
        if moved is not self.alpha.data:
            self.alpha.data = moved
        return self

    def extra_repr(self) -> str:
        w = self.weights().detach()
        shown = ", ".join(f"{n}={float(v):.3f}" for n, v in zip(self.names, w, strict=True))
        return shown + (f", aux_skip={self.aux_skip:g}" if self.aux_skip else "")


def mixed_ops(model: nn.Module) -> Iterator[tuple[str, MixedOp]]:
    """``(name, MixedOp)`` of every mixed operation in ``model``, in module order."""
    for name, mod in model.named_modules():
        if isinstance(mod, MixedOp):
            yield name, mod


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every edge's ``alpha``: the architecture optimizer's parameters."""
    return [op.alpha for _, op in mixed_ops(model)]


def genotype(model: nn.Module) -> dict[str, str]:
    """``{edge name: chosen operation}``."""
    return {name: op.chosen() for name, op in mixed_ops(model)}


def derive_modules(model: nn.Module) -> nn.Module:
    """``model`` with every mixed operation replaced by its chosen operation, in place.

    Generic derivation: the chosen module takes the mixed operation's place (its weights as
    trained in the supernet). Search spaces that know a better form (a SchNet with fewer
    blocks) derive their own model instead.
    """
    if isinstance(model, MixedOp):
        return derive_modules(model.derive())
    names = [name for name, _ in mixed_ops(model)]
    for name in names:
        if any(name.startswith(outer + ".") for outer in names):
            continue  # inside an outer mixed operation: derived with it
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, derive_modules(getattr(parent, attr).derive()))
    return model
