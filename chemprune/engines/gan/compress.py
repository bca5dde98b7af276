"""Channel pruning of a trained graph generator, removed for real (content-aware or magnitude).

The hidden layers of a :class:`~chemprune.engines.gan.models.GraphGenerator` are channel groups
(:func:`generator_groups`: a unit of layer 0 is a row of every generator's first layer and a
column of the trunk's first layer; a unit of a trunk layer is its row and the next layer's
column, or both output heads' columns). Two scores:

* :func:`content_scores` (content-aware GAN compression, Liu et al. CVPR 2021): back-propagate
  the generator's adversarial loss ``-D(G(z))`` through the *content* of each sample only (the
  slots of its real atoms and the bonds between them, :func:`~chemprune.engines.gan.base.content_mask`;
  padding slots are detached), and score each channel by the norm of the gradient on its
  producing weights, summed over batches;
* :func:`magnitude_scores`: the L1 norm of the producing weights (uniform magnitude pruning).

:func:`select_channels` keeps channels to a MAC budget: globally by layer-normalised score
(``global_=True``, content-aware) or with the same fraction in every layer (uniform).
:func:`prune_generator` masks and then shrinks with :func:`chemprune.engines.prune.shrink`, so the
smaller generator gives the masked one's outputs; it is then fine-tuned by distillation from the
uncompressed one (:class:`~chemprune.engines.gan.base.AdversarialTraining` with ``teacher``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from chemprune.engines.gan.base import AdversarialTraining, content_mask
from chemprune.engines.gan.models import GraphCritic, GraphGenerator
from chemprune.engines.prune.groups import PruningGroup, Slot
from chemprune.engines.prune.masks import apply_masks, group_masks
from chemprune.engines.prune.shrink import shrink

__all__ = [
    "content_scores",
    "generator_groups",
    "macs_with",
    "magnitude_scores",
    "prune_generator",
    "select_channels",
]


def generator_groups(gen: GraphGenerator) -> list[PruningGroup]:
    """One channel group per hidden layer (see the module docstring)."""
    groups = []
    widths = gen.hidden_widths()
    for i, width in enumerate(widths):
        if i == 0:
            produce = [
                s for k in range(gen.num_generators)
                for s in (Slot(f"first.{k}", "weight", 0), Slot(f"first.{k}", "bias", 0))
            ]  # fmt: skip
        else:
            produce = [Slot(f"trunk.{i - 1}", "weight", 0), Slot(f"trunk.{i - 1}", "bias", 0)]
        if i + 1 < len(widths):
            consume = [Slot(f"trunk.{i}", "weight", 1)]
        else:
            consume = [Slot("nodes", "weight", 1), Slot("edges", "weight", 1)]
        groups.append(
            PruningGroup(
                name=f"hidden{i}",
                kind="channel",
                size=width,
                mask_slots=tuple(produce),
                slots=tuple(produce + consume),
            )  # fmt: skip
        )
    return groups


def _producing_rows(gen: GraphGenerator, group: PruningGroup, grad: bool) -> Tensor:
    """``[units, entries]``: each unit's producing weights and bias (or their gradients)."""
    parts = []
    for slot in group.mask_slots:
        p = getattr(gen.get_submodule(slot.module), slot.param)
        t = p.grad if grad else p
        if t is None:
            t = torch.zeros_like(p)
        parts.append(t.detach().reshape(p.shape[0], -1))
    return torch.cat(parts, dim=1)


def magnitude_scores(gen: GraphGenerator) -> dict[str, Tensor]:
    """L1 norm of each channel's producing weights."""
    return {g.name: _producing_rows(gen, g, False).abs().sum(1) for g in generator_groups(gen)}


def content_scores(
    gen: GraphGenerator, critic: GraphCritic, *, batches: int = 16, batch_size: int = 64,
    seed: int = 0,
) -> dict[str, Tensor]:  # fmt: skip
    """Sum over ``batches`` of the L2 norm of the content-restricted adversarial loss's gradient
    on each channel's producing weights (the module docstring)."""
    if batches < 1 or batch_size < 1:
        raise ValueError("batches and batch_size must be >= 1")
    pack = int(getattr(critic, "pack", 1))
    batch_size = -(-batch_size // pack) * pack  # whole packs for a PacGAN critic
    groups = generator_groups(gen)
    scores = {g.name: torch.zeros(g.size) for g in groups}
    rng = torch.Generator().manual_seed(seed)
    was = gen.training, critic.training
    gen.eval()
    critic.eval()
    for p in critic.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(batches):
            z = torch.randn(batch_size, gen.z_dim, generator=rng)
            which = torch.arange(batch_size) % gen.num_generators
            gen.zero_grad(set_to_none=True)
            nodes, edges = gen(z, which)
            atom, pair = content_mask(nodes.detach())
            # gradients flow only through the content slots
            nodes = atom[..., None] * nodes + (1 - atom[..., None]) * nodes.detach()
            edges = pair[..., None] * edges + (1 - pair[..., None]) * edges.detach()
            loss = -critic(nodes.softmax(-1), edges.softmax(-1))[0].mean()
            loss.backward()
            for g in groups:
                scores[g.name] += _producing_rows(gen, g, True).norm(dim=1)
    finally:
        for p in critic.parameters():
            p.requires_grad_(True)
        gen.zero_grad(set_to_none=True)
        gen.train(was[0])
        critic.train(was[1])
    return scores


def macs_with(gen: GraphGenerator, widths: Sequence[int]) -> int:
    """MACs per graph of ``gen``'s layout with hidden ``widths``."""
    outs = gen.max_atoms * gen.atom_types + gen.max_atoms**2 * gen.bond_types
    dims = [gen.z_dim, *widths]
    return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True)) + widths[-1] * outs


def select_channels(
    gen: GraphGenerator, scores: dict[str, Tensor], target_macs: float, *, global_: bool
) -> dict[str, Tensor]:
    """Bool keep-vectors per group whose generator has at most ``target_macs`` of ``gen``'s
    MACs (at least one channel per layer). ``global_``: rank all channels by score divided by
    their layer's mean score; else keep the same fraction (highest scores) in every layer."""
    if not 0 < target_macs <= 1:
        raise ValueError(f"target_macs must be in (0, 1], got {target_macs}")
    groups = generator_groups(gen)
    budget = target_macs * gen.macs()
    sizes = [g.size for g in groups]

    def keep_top(counts: Sequence[int]) -> dict[str, Tensor]:
        out = {}
        for g, c in zip(groups, counts, strict=True):
            k = torch.zeros(g.size, dtype=torch.bool)
            k[torch.argsort(scores[g.name], descending=True)[:c]] = True
            out[g.name] = k
        return out

    if not global_:
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            counts = [max(1, int(round(mid * s))) for s in sizes]
            lo, hi = (mid, hi) if macs_with(gen, counts) <= budget else (lo, mid)
        return keep_top([max(1, int(round(lo * s))) for s in sizes])
    norm = [scores[g.name] / scores[g.name].mean().clamp(min=1e-12) for g in groups]
    allv = torch.cat(norm)
    order = torch.argsort(allv, descending=True)
    layer_of = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    counts = [1] * len(groups)  # every layer keeps its best channel
    taken = [torch.argmax(n).item() for n in norm]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    chosen = {offsets[i] + t for i, t in enumerate(taken)}
    for idx in order.tolist():
        if idx in chosen:
            continue
        i = int(layer_of[idx])
        trial = list(counts)
        trial[i] += 1
        if macs_with(gen, trial) > budget:
            continue  # a channel of a cheaper layer may still fit
        counts = trial
        chosen.add(idx)
    out = {}
    for i, g in enumerate(groups):
        k = torch.zeros(g.size, dtype=torch.bool)
        for idx in chosen:
            if offsets[i] <= idx < offsets[i] + g.size:
                k[idx - offsets[i]] = True
        out[g.name] = k
    return out


@torch.no_grad()
def prune_generator(gen: GraphGenerator, keep: dict[str, Tensor]) -> dict[str, tuple[int, int]]:
    """Mask the dropped channels, then remove them (in place); returns ``{group: (before,
    after)}``. ``gen.config()`` then describes the smaller generator."""
    groups = generator_groups(gen)
    missing = [g.name for g in groups if g.name not in keep]
    if missing:
        raise ValueError(f"no keep-vector for {', '.join(missing)}")
    masks = group_masks(gen, {g: keep[g.name].float() for g in groups})
    apply_masks(gen, masks)
    report = shrink(gen, groups)
    gen.hidden = gen.hidden_widths()
    return report


def distillation_engine(
    student: GraphGenerator, teacher: GraphGenerator, critic: GraphCritic, *, engine: type,
    distill_weight: float = 10.0, **kwargs,
) -> AdversarialTraining:  # fmt: skip
    """The fine-tuning engine of a compressed generator: the training engine it was trained
    with, plus distillation from ``teacher``."""
    return engine(
        generator=student, critic=critic, teacher=teacher, distill_weight=distill_weight, **kwargs
    )
