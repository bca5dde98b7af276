"""DDP gradient-communication hooks selectable by name.

``allreduce`` is DDP's own fp32 all-reduce (no hook registered); ``fp16`` and ``powersgd`` are
PyTorch's built-in hooks (``fp16_compress_hook``; ``powerSGD_hook`` with rank 1, compression from
the third step on, error feedback and warm start); ``terngrad`` is
:func:`chemprune.distributed.terngrad.terngrad_hook`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.nn.parallel import DistributedDataParallel

from chemprune.distributed.terngrad import TernGradState, terngrad_hook

__all__ = ["COMM_HOOKS", "CommHook", "register_comm_hook"]

COMM_HOOKS = ("allreduce", "fp16", "powersgd", "terngrad")


@dataclass
class CommHook:
    """The hook registered on a DDP model and its state; ``on_step`` before each backward."""

    name: str
    state: Any = None

    def on_step(self, step: int) -> None:
        if isinstance(self.state, TernGradState):
            self.state.step = int(step)


def register_comm_hook(
    model: DistributedDataParallel, *, name: str, seed: int = 0, terngrad_clip: float = 2.5
) -> CommHook:
    """Register the hook ``name`` (one of :data:`COMM_HOOKS`) on ``model``."""
    if name not in COMM_HOOKS:
        raise ValueError(
            f"unknown communication hook {name!r}; choose one of {', '.join(COMM_HOOKS)}"
        )
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
    state = TernGradState(process_group=None, clip=terngrad_clip, seed=seed)
    model.register_comm_hook(state, terngrad_hook)
    return CommHook(name, state)
