"""TernGrad (Wen et al., NeurIPS 2017) as a DDP communication hook.

Each rank, for each parameter's slice of a gradient bucket (per-layer scalers):

1. clips the gradient to ``|g| <= c * sigma`` (``sigma``: the slice's standard deviation,
   ``c = 2.5`` as in the paper; slices with ``sigma = 0`` are left unclipped);
2. ternarises stochastically: ``t = s * sign(g) * b`` with ``s = max |g|`` and
   ``b ~ Bernoulli(|g| / s)``, so that ``E[t] = g`` (unbiased);
3. packs the ternary values 2 bits each (4 per byte) and appends its float32 scalers;
4. all-gathers these bytes (``all_gather_single`` of one ``uint8`` tensor: 2 bits per value on the
   wire) and averages the decoded gradients of all ranks.

Like the authors' code (``--size_to_binarize``, ``--noquantize_logits``), chosen parameters can
go in float32 instead: those with fewer than ``min_size`` values (biases) and those named in
``full_precision`` (e.g. the output layer); they are appended to the same all-gathered bytes.

Every rank sends its own scalers, so the paper's scaler sharing (an extra max all-reduce) is not
needed. The random draws depend only on ``(seed, rank, step, bucket)``; the trainer sets
``state.step`` before each backward, so a resumed run draws the same numbers.
"""

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

from chemprune.engines.distributed.packing import pack_ternary, packed_size, unpack_ternary

__all__ = ["TernGradState", "clip_segments", "ternarize", "terngrad_hook"]


def _segment_ids(sizes: list[int], device: torch.device) -> Tensor:
    return torch.repeat_interleave(
        torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device)
    )


def clip_segments(grad: Tensor, sizes: list[int], *, clip: float) -> Tensor:
    """TernGrad's gradient clipping: each segment clamped to ``clip`` times its own std."""
    if clip <= 0:
        return grad
    seg = _segment_ids(sizes, grad.device)
    n = torch.tensor(sizes, dtype=grad.dtype, device=grad.device)
    mean = torch.zeros(len(sizes), dtype=grad.dtype, device=grad.device).index_add_(0, seg, grad)
    mean = mean / n
    dev = grad - mean[seg]
    var = torch.zeros_like(mean).index_add_(0, seg, dev * dev) / n
    sigma = var.sqrt()
    bound = torch.where(sigma > 0, clip * sigma, torch.full_like(sigma, float("inf")))[seg]
    return torch.clamp(grad, -bound, bound)


def ternarize(
    grad: Tensor, sizes: list[int], *, clip: float = 2.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Stochastic ternarisation of a flat ``grad`` made of segments of ``sizes`` elements.

    Returns ``(ternary int8 values, float32 scaler per segment)``; ``ternary * scaler`` of a
    segment is an unbiased estimate of the clipped gradient of that segment.
    """
    if sum(sizes) != grad.numel():
        raise ValueError(f"segment sizes add up to {sum(sizes)}, the gradient has {grad.numel()}")
    g = clip_segments(grad.reshape(-1).float(), sizes, clip=clip)
    seg = _segment_ids(sizes, g.device)
    absg = g.abs()
    scale = torch.zeros(len(sizes), dtype=g.dtype, device=g.device)
    scale = scale.scatter_reduce(0, seg, absg, reduce="amax", include_self=True)
    denom = scale[seg]
    prob = torch.where(denom > 0, absg / torch.where(denom > 0, denom, 1.0), 0.0)
    draw = torch.rand(g.shape, generator=generator, device=g.device)
    tern = torch.sign(g).to(torch.int8) * (draw < prob).to(torch.int8)
    return tern, scale


@dataclass
class TernGradState:
    """Settings and position of the TernGrad hook (one per DDP model)."""

    process_group: dist.ProcessGroup | None = None
    clip: float = 2.5
    seed: int = 0
    step: int = 0
    min_size: int = 1  # parameters with fewer values are exchanged in float32
    full_precision: frozenset[int] = frozenset()  # id() of parameters exchanged in float32
    layouts: dict = field(default_factory=dict, repr=False)  # per bucket, see _layout

    def generator(self, bucket_index: int) -> torch.Generator:
        rank = dist.get_rank(self.process_group)
        key = ((self.seed * 1_000_003 + self.step) * 1_009 + bucket_index) * 65_537 + rank
        return torch.Generator().manual_seed(key % (2**63 - 1))


@dataclass
class _Layout:
    """Which values of a bucket go ternary and which in float32, with their segments; the same
    for every step, so it is computed once per bucket (``None`` indices: all of one kind)."""

    t_sizes: list[int]  # ternary segments (parameters), in bucket order
    t_seg: Tensor | None  # segment of each ternary value
    t_idx: Tensor | None  # positions of the ternary values (None: the whole bucket)
    f_idx: Tensor | None  # positions of the float32 values (None: none)


def _layout(state: TernGradState, bucket: dist.GradBucket) -> _Layout:
    params = bucket.parameters()
    key = (bucket.index(), tuple(map(id, params)))
    found = state.layouts.get(key)
    if found is not None:
        return found
    sizes = [g.numel() for g in bucket.gradients()]
    if sum(sizes) != bucket.buffer().numel() or len(params) != len(sizes):
        sizes, full = [bucket.buffer().numel()], [False]  # one segment for the whole bucket
    else:
        full = [n < state.min_size or id(p) in state.full_precision for n, p in zip(sizes, params, strict=True)]  # fmt: skip
    t_sizes = [n for n, f in zip(sizes, full, strict=True) if not f]
    t_seg = _segment_ids(t_sizes, torch.device("cpu")) if t_sizes else None
    if not any(full):
        layout = _Layout(t_sizes, t_seg, None, None)
    else:
        elem_full = torch.tensor(full)[_segment_ids(sizes, torch.device("cpu"))]
        t_idx = (~elem_full).nonzero().squeeze(1) if t_sizes else torch.zeros(0, dtype=torch.long)
        layout = _Layout(t_sizes, t_seg, t_idx, elem_full.nonzero().squeeze(1))
    state.layouts[key] = layout
    return layout


def terngrad_hook(state: TernGradState, bucket: dist.GradBucket) -> torch.futures.Future[Tensor]:
    """DDP communication hook: ternarise, all-gather packed bytes and scalers, average."""
    group = state.process_group
    world = dist.get_world_size(group)
    buf = bucket.buffer()
    flat = buf.detach().cpu().reshape(-1).float()
    lay = _layout(state, bucket)
    n_tern = flat.numel() if lay.t_idx is None else lay.t_idx.numel()
    parts = []
    if lay.t_sizes:
        values = flat if lay.t_idx is None else flat[lay.t_idx]
        tern, scale = ternarize(
            values, lay.t_sizes, clip=state.clip, generator=state.generator(bucket.index())
        )
        parts += [pack_ternary(tern), scale.to(torch.float32).view(torch.uint8)]
    if lay.f_idx is not None:
        parts.append(flat[lay.f_idx].contiguous().view(torch.uint8))
    payload = torch.cat(parts)
    nbytes = packed_size(n_tern) if lay.t_sizes else 0
    n_scale = 4 * len(lay.t_sizes)
    gathered = torch.empty(world * payload.numel(), dtype=torch.uint8)
    work = dist.all_gather_single(gathered, payload, group=group, async_op=True)

    def decode(_: torch.futures.Future) -> Tensor:
        rows = gathered.view(world, -1)
        total = torch.zeros(buf.numel(), dtype=torch.float32)
        for r in range(world):
            if lay.t_sizes:
                scalers = rows[r, nbytes : nbytes + n_scale].clone().view(torch.float32)
                values = unpack_ternary(rows[r, :nbytes], n_tern) * scalers[lay.t_seg]
                if lay.t_idx is None:
                    total += values
                else:
                    total.index_add_(0, lay.t_idx, values)
            if lay.f_idx is not None:
                fp32 = rows[r, nbytes + n_scale :].clone().view(torch.float32)
                total.index_add_(0, lay.f_idx, fp32)
        buf.copy_((total / world).to(buf.dtype).view_as(buf))
        return buf

    return work.get_future().then(decode)
