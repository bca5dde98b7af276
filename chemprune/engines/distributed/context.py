"""One process's place in a training run: rank, world size, and the collectives the trainer uses.

``DistContext.single()`` is the one-process case (every method is then local and free);
``DistContext.from_env()`` joins the gloo process group that ``torchrun`` describes in the
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["DistContext", "WorldSizeError", "bytes_written"]

T = TypeVar("T")


class WorldSizeError(RuntimeError):
    """The number of processes differs from the one asked for or the one a checkpoint saw."""


def bytes_written() -> int | None:
    """This process's ``wchar`` from ``/proc/self/io``: bytes handed to write/writev/send calls
    (gloo's TCP sends included); ``None`` where the kernel does not provide it."""
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class DistContext:
    """Rank and world size plus the few collectives training needs."""

    def __init__(self, *, rank: int = 0, world_size: int = 1) -> None:
        self.rank = int(rank)
        self.world_size = int(world_size)

    @classmethod
    def single(cls) -> DistContext:
        return cls()

    @classmethod
    def from_env(
        cls, *, expected_world_size: int | None = None, timeout_s: float = 300.0
    ) -> DistContext:
        """Join the gloo group described by torchrun's environment variables."""
        missing = [
            k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
        ]
        if missing:
            raise WorldSizeError(
                f"not started by torchrun: the environment lacks {', '.join(missing)}"
            )
        world = int(os.environ["WORLD_SIZE"])
        if expected_world_size is not None and world != expected_world_size:
            raise WorldSizeError(
                f"torchrun started {world} processes in all, but --nproc x --nnodes asks for "
                f"{expected_world_size}; make them agree"
            )
        if world > 1 and not dist.is_initialized():
            timeout = timedelta(seconds=timeout_s)
            store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
            # torchrun reuses its store when it restarts the workers: without a prefix per
            # attempt, gloo would read the addresses of the previous attempt's processes
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(f"chemprune/attempt_{attempt}", store)
            dist.init_process_group(
                "gloo", store=store, rank=rank, world_size=world, timeout=timeout
            )
        return cls(rank=int(os.environ["RANK"]), world_size=world)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # -- data ---------------------------------------------------------------------------------
    def shard(self, chunk: Tensor) -> Tensor:
        """This rank's contiguous part of a global batch of molecule indices."""
        if not self.distributed:
            return chunk
        return torch.tensor_split(chunk, self.world_size)[self.rank]

    def mse(self, err: Tensor, *, global_count: int) -> Tensor:
        """This rank's loss such that DDP's average over ranks of its gradient is the gradient
        of the mean squared error over the whole global batch (``global_count`` molecules);
        ``err`` may be a part of this rank's share (the parts' losses then add up)."""
        return (err * err).sum() * (self.world_size / global_count)

    # -- agreement ------------------------------------------------------------------------------
    def any(self, *flags: bool) -> list[bool]:
        """Each flag, true on all ranks when it is true on any rank (one tiny all-reduce)."""
        if not self.distributed:
            return [bool(f) for f in flags]
        t = torch.tensor([float(bool(f)) for f in flags])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over ranks (float64)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 and give its result (or raise its exception) on every rank."""
        if not self.distributed:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as err:  # re-raised on every rank below
                box[0] = ("error", err)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    # -- model ----------------------------------------------------------------------------------
    def wrap(
        self, model: nn.Module, *, hook: str, seed: int, **hook_options: Any
    ) -> tuple[nn.Module, Any]:
        """``(DDP-wrapped model with the hook registered, hook)``; the model itself when alone.
        ``hook_options`` go to :func:`~chemprune.engines.distributed.hooks.register_comm_hook`."""
        from chemprune.engines.distributed.hooks import CommHook, register_comm_hook

        if not self.distributed:
            return model, CommHook(hook)
        ddp = nn.parallel.DistributedDataParallel(model, forward_sync_buffers=False)
        return ddp, register_comm_hook(ddp, name=hook, seed=seed, **hook_options)

    def evaluate(
        self, errors: Callable[[np.ndarray], Tensor], indices: np.ndarray
    ) -> dict[str, float]:
        """MAE/RMSE over ``indices``, each rank computing its share (same numbers on all).

        ``errors(share)`` returns prediction minus target (float64) for the molecules ``share``
        of ``indices``; the caller (the pipeline, which knows models and data) supplies it, e.g.
        :func:`chemprune.pipeline.evaluate.prediction_errors` bound to a model and its data."""
        if not self.distributed:
            err = errors(np.asarray(indices))
            return {
                "mae": float(err.abs().mean()),
                "rmse": math.sqrt(float((err * err).mean())),
                "n": int(err.numel()),
            }
        mine = np.array_split(np.asarray(indices), self.world_size)[self.rank]
        abs_sum = sq_sum = 0.0
        if len(mine):
            err = errors(mine)
            abs_sum, sq_sum = float(err.abs().sum()), float((err * err).sum())
        a, s, n = self.sum([abs_sum, sq_sum, float(len(mine))])
        return {"mae": a / n, "rmse": math.sqrt(s / n), "n": int(n)}
