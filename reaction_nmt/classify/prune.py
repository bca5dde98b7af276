"""Channel pruning of a :class:`~reaction_nmt.classify.model.ReactionCNN`, removed for real.

:func:`classifier_groups` declares each block's channels (the convolution's rows and bias, the
batch norm's entries, the next convolution's or the head's input columns). :func:`prune_classifier`
scores them with a :mod:`chemprune.engines.prune` engine (``cdc`` with any discriminant, including an
evolved one; ``magnitude``; ``random``), keeps the same fraction of every block so that the
model's MACs fall to ``flops_fraction`` of the dense model's, and shrinks the model.
:func:`class_features` gives CDC each block's activations averaged over the real (non-padding)
positions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from chemprune.engines.prune import PRUNERS, PruningGroup, Slot, shrink
from chemprune.engines.prune.masks import apply_masks, group_masks
from reaction_nmt.classify.model import ReactionCNN
from reaction_nmt.classify.train import trim

__all__ = [
    "class_features",
    "classifier_groups",
    "discriminant_distillation",
    "keep_counts",
    "prune_classifier",
]


def classifier_groups(model: ReactionCNN) -> list[PruningGroup]:
    groups = []
    n = len(model.convs)
    for i, conv in enumerate(model.convs):
        mask = [Slot(f"convs.{i}", "weight", 0), Slot(f"convs.{i}", "bias", 0)]
        extra = [
            Slot(f"norms.{i}", p, 0) for p in ("weight", "bias", "running_mean", "running_var")
        ]
        extra.append(
            Slot(f"convs.{i + 1}", "weight", 1) if i + 1 < n else Slot("head", "weight", 1)
        )
        groups.append(PruningGroup(name=f"block{i}", kind="channel", size=conv.out_channels,
                                   mask_slots=tuple(mask), slots=tuple(mask + extra)))  # fmt: skip
    return groups


def _macs(model: ReactionCNN, widths: Sequence[int], length: int) -> int:
    dims = [model.embed_dim, *widths]
    conv = sum(a * b * model.kernel_size * length for a, b in zip(dims[:-1], dims[1:], strict=True))
    return conv + widths[-1] * model.num_classes


def keep_counts(model: ReactionCNN, flops_fraction: float, length: int = 100) -> list[int]:
    """Channels to keep per block (the same fraction in each) for at most ``flops_fraction``
    of the model's MACs on a sequence of ``length`` tokens."""
    if not 0 < flops_fraction <= 1:
        raise ValueError(f"flops_fraction must be in (0, 1], got {flops_fraction}")
    full = _macs(model, model.channels, length)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        counts = [max(1, int(round(mid * c))) for c in model.channels]
        lo, hi = (mid, hi) if _macs(model, counts, length) <= flops_fraction * full else (lo, mid)
    return [max(1, int(round(lo * c))) for c in model.channels]


def class_features(model: ReactionCNN, tokens: Tensor) -> dict[str, Tensor]:
    """``{block<i>: [B, C_i]}``: each block's activations averaged over the real positions."""
    tokens = trim(tokens)
    real = (tokens != 0).float().sum(1).clamp(min=1).unsqueeze(1)
    return {f"block{i}": f.sum(2) / real for i, f in enumerate(model.features(tokens))}


@torch.no_grad()
def prune_classifier(
    model: ReactionCNN,
    data: tuple[Tensor, Tensor],
    *,
    method: str,
    flops_fraction: float,
    function: str | Callable[[Mapping[str, Tensor]], Tensor] = "symmetric_divergence",
    coarse: Sequence[int] | None = None,
    coarse_groups: int = 0,
    batch_size: int = 256,
    max_batches: int = 40,
    seed: int = 0,
) -> dict:
    """Prune ``model`` in place; ``data`` (tokens, labels) feeds the class statistics.

    Returns the widths before and after and the MAC fraction on 100-token reactions."""
    groups = classifier_groups(model)
    counts = keep_counts(model, flops_fraction)
    sparsity = {g.name: 1 - c / g.size for g, c in zip(groups, counts, strict=True)}
    engine = PRUNERS.get(method)
    kwargs: dict = {}
    if engine.needs_data:  # class statistics of the blocks' outputs
        kwargs = {"function": function, "num_classes": model.num_classes, "coarse": coarse,
                  "coarse_groups": coarse_groups, "features": class_features}  # fmt: skip
    elif "seed" in inspect.signature(engine.__init__).parameters:  # random selection
        kwargs = {"seed": seed}
    pruner = engine(groups=groups, sparsity=0.5, scope="layer", **kwargs)
    if pruner.needs_data:
        x, y = data
        for i in range(0, min(len(x), batch_size * max_batches), batch_size):
            pruner.observe(model, x[i : i + batch_size], y[i : i + batch_size])
    from chemprune.engines.prune.base import select_units

    scores = pruner.score(model)
    keep = select_units(scores, groups, sparsity, scope="layer")
    before = model.channels
    full = _macs(model, before, 100)
    apply_masks(model, group_masks(model, keep))
    shrink(model, groups)
    return {"method": method, "channels_before": before, "channels_after": model.channels,
            "flops_fraction": _macs(model, model.channels, 100) / full}  # fmt: skip


def discriminant_distillation(
    student: ReactionCNN, teacher: ReactionCNN, data: tuple[Tensor, Tensor], *,
    weight: float = 1.0, dim: int | None = None, max_rows: int = 4096,
):  # fmt: skip
    """``(loss_fn, extra parameters)`` for fine-tuning a pruned ``student``: cross-entropy plus
    ``weight`` times, per block, the squared difference of student and teacher features
    (position-averaged) in the teacher's discriminant subspace of that block (``dim``: classes
    - 1), through a learned map of the student's width to the teacher's (CDC's distillation)."""
    from chemprune.engines.distill import DiscriminantFeatureLoss
    from chemprune.engines.prune.discriminant import discriminant_subspace

    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    x, y = data[0][:max_rows], data[1][:max_rows]
    with torch.no_grad():
        t_feats = class_features(teacher, x)
    d = dim or teacher.num_classes - 1
    losses = []
    for i, (s_c, t_c) in enumerate(zip(student.channels, teacher.channels, strict=True)):
        w = discriminant_subspace(t_feats[f"block{i}"], y, d)
        losses.append(DiscriminantFeatureLoss(student_dim=s_c, teacher_dim=t_c, project=True,
                                              subspace=w))  # fmt: skip
    params = [p for term in losses for p in term.auxiliary_parameters()]

    def loss_fn(model: ReactionCNN, tokens: Tensor, labels: Tensor) -> Tensor:
        s_feats = model.features(tokens)
        real = (tokens != 0).float().sum(1).clamp(min=1).unsqueeze(1)
        logits = model.head(model.drop(s_feats[-1].amax(dim=2)))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        with torch.no_grad():
            t = class_features(teacher, tokens)
        for i, term in enumerate(losses):
            loss = loss + weight * term(s_feats[i].sum(2) / real, t[f"block{i}"])
        return loss

    return loss_fn, params
