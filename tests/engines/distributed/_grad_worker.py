"""Run by torchrun (2 processes) from test_ddp_gradients.py; writes ``OUT/rank{R}.pt``.

Not a test module: every rank builds the same tiny SchNet and synthetic molecules, then records
gradients from the real DDP paths (``DistContext.wrap`` with each hook) and from references.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from chemprune.engines.distributed import DistContext, SmoothOut
from chemprune.engines.distributed.terngrad import clip_segments
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.pipeline.train_step import accumulate_gradients

GLOBAL_BATCH = 10
TERNGRAD_DRAWS = 400


def molecules(n: int = 16, seed: int = 0) -> MoleculeSet:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(3, 7, (n,), generator=g)
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (int(counts.sum()),), generator=g)]
    pos = 3.0 * torch.rand(int(counts.sum()), 3, generator=g)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return MoleculeSet(z, pos, ptr, torch.randn(n, generator=g))


def tiny_model() -> SchNet:
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, filter_channels=8, num_interactions=2, num_gaussians=8)


def grads_of(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def backward(net, ctx, mset, chunk) -> None:
    b = mset.collate(ctx.shard(chunk))
    err = net(b.z, b.pos, b.batch, num_molecules=b.num_molecules) - b.y
    for p in net.parameters():
        p.grad = None
    ctx.mse(err, global_count=chunk.numel()).backward()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ctx = DistContext.from_env(expected_world_size=2)
    mset, chunk = molecules(), torch.arange(GLOBAL_BATCH)
    result: dict = {"rank": ctx.rank, "world_size": ctx.world_size}

    # the single-process reference: whole batch, one process, no DDP
    single = tiny_model()
    backward(single, DistContext.single(), mset, chunk)
    result["single"] = grads_of(single)

    for hook in ("allreduce", "fp16", "powersgd"):
        model = tiny_model()
        net, _ = ctx.wrap(model, hook=hook, seed=0)
        backward(net, ctx, mset, chunk)
        result[hook] = grads_of(model)
        for _ in range(2):  # PowerSGD compresses from its third step on
            backward(net, ctx, mset, chunk)
        result[f"{hook}_3"] = grads_of(model)

    # TernGrad: mean over many draws versus the mean over ranks of the clipped local gradients
    local = tiny_model()
    backward(local, DistContext.single(), mset, ctx.shard(chunk))
    clipped = [
        clip_segments(g.reshape(-1), [g.numel()], clip=2.5).view_as(g) for g in grads_of(local)
    ]
    scale = torch.stack([c.abs().max() for c in clipped])
    dist.all_reduce(scale, op=dist.ReduceOp.MAX)
    for c in clipped:
        dist.all_reduce(c)
        c /= ctx.world_size
    model = tiny_model()
    net, hook = ctx.wrap(model, hook="terngrad", seed=0)
    total = [torch.zeros_like(p) for p in model.parameters()]
    for step in range(TERNGRAD_DRAWS):
        hook.on_step(step)
        backward(net, ctx, mset, chunk)
        for t, p in zip(total, model.parameters(), strict=True):
            t += p.grad
    result["terngrad_one"] = grads_of(model)
    result["terngrad_mean"] = [t / TERNGRAD_DRAWS for t in total]
    result["terngrad_expected"] = clipped
    result["terngrad_scale"] = scale

    # TernGrad with small parameters (< 10 values: the biases) and the output layer in float32
    model = tiny_model()
    net, _ = ctx.wrap(
        model, hook="terngrad", seed=0, terngrad_min_size=10, terngrad_full_precision=["lin2.*"]
    )
    backward(net, ctx, mset, chunk)
    result["terngrad_mixed"] = grads_of(model)
    result["names"] = [n for n, _ in model.named_parameters()]

    # SmoothOut under DDP: weights restored exactly, gradients taken at the perturbed point
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    net, _ = ctx.wrap(model, hook="allreduce", seed=0)
    smooth = SmoothOut(amplitude=0.05, seed=0, rank=ctx.rank)
    with smooth.perturbed(model, step=3):
        backward(net, ctx, mset, chunk)
    result["smooth_grads"] = grads_of(model)
    result["smooth_restored"] = all(
        torch.equal(a, p.detach()) for a, p in zip(before, model.parameters(), strict=True)
    )
    # the same gradient computed by hand: each rank's shard at its own perturbed weights
    shifted = copy.deepcopy(tiny_model())
    with torch.no_grad():
        for p, n in zip(shifted.parameters(), smooth.noise(shifted, step=3), strict=True):
            p.add_(n)
    backward(shifted, DistContext.single(), mset, ctx.shard(chunk))
    by_hand = grads_of(shifted)
    share = ctx.shard(chunk).numel() / chunk.numel()
    for g in by_hand:
        g *= share * ctx.world_size
        dist.all_reduce(g)
        g /= ctx.world_size
    result["smooth_by_hand"] = by_hand

    # SmoothOut with a draw per 2 molecules (5 per rank: parts of 2, 2, 1) through the training
    # step: the parts' perturbed-point gradients summed locally, exchanged once
    model = tiny_model()
    net, _ = ctx.wrap(model, hook="allreduce", seed=0)
    pieces = SmoothOut(amplitude=0.05, seed=0, rank=ctx.rank, chunk=2)
    err, loss = accumulate_gradients(net, model, mset, chunk, ctx=ctx, smooth=pieces, step=3)
    result["pieces_grads"] = grads_of(model)
    result["pieces_err_n"] = err.numel()
    by_hand = [torch.zeros_like(p) for p in model.parameters()]
    parts = pieces.pieces(ctx.shard(chunk))
    result["pieces_n"] = len(parts)
    for i, part in enumerate(parts):
        shifted = tiny_model()
        with torch.no_grad():
            for p, n in zip(
                shifted.parameters(), pieces.noise(shifted, step=3, piece=i), strict=True
            ):
                p.add_(n)
        b = mset.collate(part)
        e = shifted(b.z, b.pos, b.batch, num_molecules=b.num_molecules) - b.y
        ((e * e).sum() / chunk.numel()).backward()  # this part's share of the global mean
        for t, g in zip(by_hand, grads_of(shifted), strict=True):
            t += g
    for g in by_hand:
        dist.all_reduce(g)  # the gradient of the global mean: the sum over ranks
    result["pieces_by_hand"] = by_hand
    torch.save(result, out / f"rank{ctx.rank}.pt")
    ctx.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
