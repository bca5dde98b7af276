"""Training steps: the batches of an epoch, one step's gradient (this rank's share, SmoothOut's
draws, one exchange), gradient clipping."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor, nn

from chemprune.engines.distributed.context import DistContext
from chemprune.engines.distributed.smoothout import SmoothOut
from chemprune.molecules.data.batching import MoleculeSet, batch_indices

__all__ = ["accumulate_gradients", "clip_gradients", "steps_per_epoch", "usable"]


def accumulate_gradients(
    net: nn.Module,
    model: nn.Module,
    data: MoleculeSet,
    chunk: Tensor,
    *,
    ctx: DistContext,
    smooth: SmoothOut,
    step: int,
    distill: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Set ``model``'s gradients to those of the mean squared error over the global batch
    ``chunk`` (molecule indices), averaged over ranks; returns ``(errors of this rank's
    molecules, this rank's loss)``, both detached.

    ``net`` is ``model`` or its DDP wrapper. SmoothOut perturbs the weights around each part of
    this rank's share (``smooth.pieces``: one part unless it has a ``chunk``); the parts'
    gradients add up locally and DDP exchanges their sum once, at the last part's backward.
    ``distill`` (a :class:`~chemprune.molecules.schnet.distill.SchNetDistillation` of ``model``, one
    process only) runs the teacher beside the student and adds its terms to the loss.
    """
    for p in model.parameters():
        p.grad = None
    pieces = smooth.pieces(ctx.shard(chunk))
    errs, losses = [], []
    for i, piece in enumerate(pieces):
        b = data.collate(piece)
        sync = i == len(pieces) - 1
        with _no_sync(net, not sync), smooth.perturbed(model, step=step, piece=i):
            if distill is None:
                pred, kd = net(b.z, b.pos, b.batch, num_molecules=b.num_molecules), None
            else:
                pred, terms = distill(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
                kd = terms["kd"] / len(pieces)
            err = pred - b.y
            loss = ctx.mse(err, global_count=chunk.numel())
            if kd is not None:
                loss = loss + kd
            loss.backward()
        errs.append(err.detach())
        losses.append(loss.detach())
    if len(pieces) == 1:
        return errs[0], losses[0]
    return torch.cat(errs), torch.stack(losses).sum()


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """The total L2 norm of ``model``'s gradients; above ``max_norm`` (> 0) they are scaled down
    to it (``max_norm`` 0: never). Under DDP every rank holds the same averaged gradients, so
    every rank clips them the same way."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm)


def usable(chunks: list[torch.Tensor], ctx: DistContext) -> list[torch.Tensor]:
    """The batches every rank gets at least one molecule of (a short last one may not)."""
    return [c for c in chunks if c.numel() >= ctx.world_size]


def steps_per_epoch(train_idx: np.ndarray, batch_size: int, ctx: DistContext) -> int:
    """Optimizer steps in one epoch (the same for every shuffle)."""
    return len(usable(batch_indices(train_idx, batch_size, shuffle=False), ctx))


def _no_sync(net: nn.Module, skip: bool):
    """DDP's ``no_sync()`` (gradients only accumulate locally) when ``skip``, else nothing."""
    if skip and hasattr(net, "no_sync"):
        return net.no_sync()
    return contextlib.nullcontext()
