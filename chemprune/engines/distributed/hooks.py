"""DDP gradient-communication hooks selectable by name.

``allreduce`` is DDP's own fp32 all-reduce (no hook registered); ``fp16`` and ``powersgd`` are
PyTorch's built-in hooks (``fp16_compress_hook``; ``powerSGD_hook`` with rank 1, compression from
the third step on, error feedback and warm start); ``terngrad`` is
:func:`chemprune.engines.distributed.terngrad.terngrad_hook`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from chemprune.engines.distributed.terngrad import TernGradState, terngrad_hook

__all__ = ["COMM_HOOKS", "CommHook", "full_precision_ids", "register_comm_hook"]

COMM_HOOKS = ("allreduce", "fp16", "powersgd", "terngrad")


@dataclass
class CommHook:
    """The hook registered on a DDP model and its state; ``on_step`` before each backward."""

    name: str
    state: Any = None

    def on_step(self, step: int) -> None:
        if isinstance(self.state, TernGradState):
            self.state.step = int(step)


def full_precision_ids(model: nn.Module, patterns: Sequence[str]) -> frozenset[int]:
    """``id()`` of the parameters whose names match any glob pattern; each pattern must match."""
    named = list(model.named_parameters())
    ids = set()
    for pattern in patterns:
        hits = [p for n, p in named if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(
                f"TernGrad full-precision pattern {pattern!r} matches no parameter of the model "
                f"(names look like {', '.join(n for n, _ in named[-3:])})"
            )
        ids.update(id(p) for p in hits)
    return frozenset(ids)


def register_comm_hook(
    model: DistributedDataParallel,
    *,
    name: str,
    seed: int = 0,
    terngrad_clip: float = 2.5,
    terngrad_min_size: int = 1,
    terngrad_full_precision: Sequence[str] = (),
) -> CommHook:
    """Register the hook ``name`` (one of :data:`COMM_HOOKS`) on ``model``.

    TernGrad options: parameters with fewer than ``terngrad_min_size`` values, and those whose
    names (as in ``model.module``) match a glob of ``terngrad_full_precision``, are exchanged
    in float32 (the authors' ``--size_to_binarize`` and ``--noquantize_logits``)."""
    if name not in COMM_HOOKS:
        raise ValueError(
            f"unknown communication hook {name!r}; choose one of {', '.join(COMM_HOOKS)}"
        )
    if terngrad_min_size < 1:
        raise ValueError(f"terngrad_min_size must be >= 1, got {terngrad_min_size}")
    if name != "terngrad" and (terngrad_min_size != 1 or terngrad_full_precision):
        raise ValueError(f"TernGrad options given with the {name!r} hook")
    if name == "allreduce":
        return CommHook(name)
    if name == "fp16":
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook

        model.register_comm_hook(None, fp16_compress_hook)
        return CommHook(name)
    if name == "powersgd":
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd

        state = psgd.PowerSGDState(
            process_group=None,
            matrix_approximation_rank=1,
            start_powerSGD_iter=2,
            random_seed=seed,
        )
        model.register_comm_hook(state, psgd.powerSGD_hook)
        return CommHook(name, state)
    state = TernGradState(
        process_group=None,
        clip=terngrad_clip,
        seed=seed,
        min_size=int(terngrad_min_size),
        full_precision=full_precision_ids(model.module, terngrad_full_precision),
    )
    model.register_comm_hook(state, terngrad_hook)
    return CommHook(name, state)
