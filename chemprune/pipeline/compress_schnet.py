"""Prune a trained chemprune SchNet with any registered engine, fine-tune, shrink, measure.

Structured pruning (``kind="kernel"``, ``"filter"``, ``"filter_hidden"``, ...) removes units for
real: the result is a smaller dense SchNet whose per-block widths the checkpoint records.
Unstructured pruning (``kind="weight"``) leaves zeros in dense tensors (smaller only with sparse
storage).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from chemprune.engines.prune import (
    PRUNERS,
    AutoPrunePruner,
    Schedule,
    remove_masks,
    summarize,
)
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.splits import Split, check_split, make_split
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.distill import SchNetDistillation
from chemprune.molecules.schnet.prune_groups import (
    schnet_groups,
    schnet_layer_groups,
    shrink_schnet,
)
from chemprune.molecules.schnet.prune_stats import (
    observe_targets,
    schnet_channel_features,
    schnet_filter_profiles,
)
from chemprune.molecules.schnet.refit import refit_blocks
from chemprune.pipeline.evaluate import evaluate_model
from chemprune.pipeline.finetune import finetune
from chemprune.pipeline.prune_settings import PruneSettings

__all__ = [
    "split_from_checkpoint", "prune_schnet", "model_stats", "shrunk_config", "sparsity_for_macs",
]  # fmt: skip


def split_from_checkpoint(ckpt: dict[str, Any], num_molecules: int) -> Split:
    """Rebuild the run's split from the seed and sizes stored in a checkpoint (checked), or
    take it as stored when the checkpoint holds an explicit one (``"kind": "explicit"``, with
    train indices, as ``chemprune import`` writes for a split made elsewhere)."""
    info = ckpt.get("data", {}).get("split")
    if not info:
        raise ValueError("the checkpoint records no data split")
    check_split(info)  # malformed ids: "the checkpoint has an invalid split: ..." (ValueError)
    if info.get("kind") == "explicit":
        parts = {p: info[p].numpy().astype(np.int64) for p in ("train", "val", "test")}
        if any(len(v) and int(v.max()) >= num_molecules for v in parts.values()):
            raise ValueError(
                "the checkpoint's split names molecules this data set does not have (different "
                "data set?)"
            )
        return Split(train=parts["train"], val=parts["val"], test=parts["test"], seed=-1)
    sizes = tuple(int(s) for s in info["sizes"])
    split = make_split(num_molecules, sizes, int(info["seed"]))
    for part in ("val", "test"):
        if not np.array_equal(split.part(part), info[part].numpy().astype(np.int64)):
            raise ValueError(
                "the checkpoint's split cannot be reproduced on this data (different data set or "
                "NumPy version?)"
            )
    return split


@torch.no_grad()
def model_stats(model: SchNet, data: MoleculeSet, indices: np.ndarray) -> dict[str, Any]:
    """Parameters, nonzero parameters and MACs (measured on one batch of ``indices``)."""
    b = data.collate(indices[:64])
    was = model.training
    model.eval()
    s = summarize(model, lambda m: m(b.z, b.pos, b.batch, num_molecules=b.num_molecules))
    model.train(was)
    return {
        "params": s["params"],
        "nonzero_params": s["nonzero_params"],
        "macs_per_batch64": s["macs"],
        "effective_macs_per_batch64": s["effective_macs"],
        "hidden_channels": model.hidden_channels,
        "filter_channels": model.filter_channels,
        "filter_hidden_channels": [blk.filter_hidden_channels for blk in model.interactions],
        "interaction_channels": [blk.interaction_channels for blk in model.interactions],
    }


_WIDTH_KEYS = {
    "filters": "filter_channels",
    "filter_hidden": "filter_hidden_channels",
    "interaction": "interaction_channels",
}


def shrunk_config(model: SchNet, groups: Sequence[Any], sparsity: float) -> dict[str, Any]:
    """``model.config()`` after removing ``round(sparsity * units)`` units of every group."""
    cfg = model.config()
    for g in groups:
        keep = max(1, g.size - int(round(sparsity * g.size)))
        if g.name == "atom_basis":
            cfg["hidden_channels"] = keep
            continue
        _, block, part = g.name.split(".")
        cfg[_WIDTH_KEYS[part]] = list(cfg[_WIDTH_KEYS[part]])
        cfg[_WIDTH_KEYS[part]][int(block)] = keep
    return cfg


@torch.no_grad()
def sparsity_for_macs(
    model: SchNet,
    batch: Any,
    fraction: float,
    *,
    kind: str = "filter",
    blocks: Sequence[int] | None = None,
    tabulated: bool = False,
) -> float:
    """The smallest structured sparsity whose shrunk model needs at most ``fraction`` of
    ``model``'s multiply-accumulates on ``batch`` (a :class:`MoleculeBatch`).

    MACs are counted on architectures rebuilt with the shrunk widths, so the answer holds for
    any engine (they all remove the same number of units per group). With ``tabulated`` both the
    model and the shrunk ones are counted as they run once tabulated (no filter networks; each
    pair's interpolation instead, whose work does not depend on the knot count).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the target MAC fraction must be in (0, 1), got {fraction}")
    groups = schnet_groups(model, kind, blocks=blocks)

    def macs(sparsity: float) -> int:
        cfg = shrunk_config(model, groups, sparsity)
        if tabulated:
            cfg = SchNet.tabulated_config(cfg, 2)  # any count: the table is not filled
        m = SchNet.from_config(cfg).eval()
        return summarize(m, lambda net: net(batch.z, batch.pos, batch.batch))["macs"]

    dense = macs(0.0)
    target = fraction * dense
    top = 1.0 - 1.0 / min(g.size for g in groups)  # every group keeps one unit at least
    least = macs(top)
    if least > target:
        raise ValueError(
            f"pruning {kind} cannot reach {fraction:.3g} of the MACs: at most "
            f"{1 - least / dense:.1%} of them can be removed this way"
        )
    lo, hi = 0.0, top
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if macs(mid) <= target else (mid, hi)
    return hi


def prune_schnet(
    model: SchNet,
    data: MoleculeSet,
    split: Split,
    settings: PruneSettings,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prune ``model`` in place by ``settings``; returns a report (widths, params, MACs, MAE
    before/after).

    The fields of ``settings`` (:class:`~chemprune.pipeline.prune_settings.PruneSettings`):
        method: a registered engine (``magnitude``, ``olmp``, ``autoprune``, ...).
        sparsity: fraction of units (weights or channels) to remove.
        kind: ``weight`` (unstructured), ``filter`` or ``filter_hidden`` (structured, shrunk).
        blocks: interaction blocks to prune (default all).
        finetune_minutes: training budget after (and, for AutoPrune, during) pruning.
        finetune_steps: also stop after this many optimizer steps in all (a budget that does not
            depend on how busy the machine is); engines with gates spend half on gate training.
        lr, batch_size: of the fine-tuning (and gate-training) steps.
        engine_options: extra keyword arguments of the engine. Engines that score from data
            (``cdc``: a discriminant ``function``, a name or an evolved expression) see the first
            ``observe_molecules`` (2048) training molecules with ``target_bins`` (5) quantile
            bins of the target as classes (:mod:`chemprune.molecules.schnet.prune_stats`).
        lr_schedule, min_lr: of the fine-tuning after removal (``constant`` or ``cosine`` from
            ``lr`` to ``min_lr``); gate training runs at the constant ``lr``.
        distill: ``none``, ``output`` or ``features``: the dense model as passed in teaches the
            pruned one during gate training and fine-tuning
            (:class:`~chemprune.molecules.schnet.distill.SchNetDistillation`), with these loss weights.
        gradual: engines without gates (magnitude, ...) remove units gradually instead of at
            once: during the first half of the budget the sparsity ramps up (cubic, over 60% of
            that half, masks recomputed every 10 steps), as the gated engines' gates close; the
            second half fine-tunes the final masks. Needs ``finetune_steps``.
        rank_energy: engines whose unit is a layer's rank (``force``): instead of ``sparsity``,
            keep in every layer the rank that holds this share of its squared singular values
            (after the regularised first half); ``kind`` then names layer families
            (``atomwise``, ``filter_network``, joined by '+').
        threshold: ``ssl``: instead of ``sparsity``, remove every unit (channel, block) whose
            group norm fell to at most this after the regularised first half (the learned
            sparsity).
        filter_grid: train on a grid (:attr:`SchNet.filter_grid`): during gate training and
            fine-tuning, the student's and the teacher's filters are interpolated from this many
            knots per step; the model is returned exact (0: exact throughout).
        ema: the fine-tuning after removal validates, selects and returns an exponential moving
            average of the weights with this decay (0: the weights themselves; see
            :func:`~chemprune.pipeline.finetune.finetune`).
        refit: right after the removal, refit these linear layers of every block (``f2out``,
            ``out``) by least squares to reproduce the dense model's outputs of the same layers
            on the first ``refit_molecules`` training molecules
            (:func:`~chemprune.molecules.schnet.refit.refit_blocks`); the fine-tuning starts there.

    Engines that train first (``ssl``, ``force``: ``trains_first``) spend the first half of the
    budget training with their regularizer, as the gated engines train their gates; ``ssl``
    with ``depth`` groups removes whole interaction blocks, ``force`` splits each layer into
    two thinner ones before the fine-tuning.
    """
    settings.check()
    method, sparsity, kind, blocks = (
        settings.method,
        settings.sparsity,
        settings.kind,
        settings.blocks,
    )
    finetune_minutes, finetune_steps = settings.finetune_minutes, settings.finetune_steps
    lr, batch_size, seed = settings.lr, settings.batch_size, settings.seed
    lr_schedule, min_lr, distill = settings.lr_schedule, settings.min_lr, settings.distill
    gradual, rank_energy, threshold = settings.gradual, settings.rank_energy, settings.threshold
    filter_grid, ema, refit = settings.filter_grid, settings.ema, settings.refit
    engine_cls = PRUNERS.get(method)
    gated = issubclass(engine_cls, AutoPrunePruner)
    by_rank = engine_cls.unit == "rank"
    if by_rank:
        kind = "atomwise+filter_network" if kind == "weight" else kind
        groups = schnet_layer_groups(model, kind, blocks=blocks)
    else:
        groups = schnet_groups(model, kind, blocks=blocks)
    if kind != "weight" and not by_rank:
        for g in groups:
            if g.kind != "block" and round(sparsity * g.size) >= g.size:
                raise ValueError(
                    f"sparsity {sparsity} would leave {g.name} with no channel ({g.size} channels); "
                    f"use a sparsity below {1 - 1 / g.size:.3f}"
                )
    val_idx = split.val
    before_val = evaluate_model(model, data, val_idx)
    before = model_stats(model, data, val_idx)
    options = dict(settings.engine_options)
    scope = "layer" if kind != "weight" or by_rank else "global"
    if engine_cls.needs_metric:
        probe = val_idx[: min(len(val_idx), 1000)]
        dense_probe = evaluate_model(model, data, probe)["mae"]

        def metric(m: SchNet) -> float:
            return -evaluate_model(m, data, probe)["mae"]

        increase = float(options.pop("max_increase", 0.05))
        options.setdefault("budget", 60)
        engine = engine_cls(
            groups=groups,
            sparsity=sparsity,
            metric=metric,
            max_drop=increase * dense_probe,
            reference="initial",
            **options,
        )
    else:
        if engine_cls.uses_profiles:  # filter groups get distance profiles, the others weights
            options.setdefault("profile_fn", schnet_filter_profiles())
        if issubclass(engine_cls, AutoPrunePruner):
            # gates close by rank, ramping to the requested sparsity over 60% of the gate
            # training (500 steps under a time budget), so apply() removes what is already off
            options.setdefault("rank_gates", True)
            ramp = 500 if finetune_steps is None else max(1, int(0.6 * (finetune_steps // 2)))
            options.setdefault("schedule", Schedule(begin=0, end=ramp, power=3.0))
        if engine_cls.trains_first:  # applied once, after the regularised first half
            options.setdefault("schedule", Schedule(begin=2**62))
        if gradual:
            ramp = max(1, int(0.6 * (finetune_steps // 2)))
            options.setdefault("schedule", Schedule(begin=0, end=ramp, every=10, power=3.0))
        if engine_cls.needs_data:  # class statistics, the classes being the target's bins
            bins = int(options.pop("target_bins", 5))
            observe = int(options.pop("observe_molecules", 2048))
            options.setdefault("features", schnet_channel_features(groups))
            options.setdefault("num_classes", bins)
        engine = engine_cls(groups=groups, sparsity=sparsity, scope=scope, **options)
        if engine_cls.needs_data:
            observe_targets(engine, model, data, split.train[:observe], bins=bins,
                            batch_size=max(batch_size, 64))  # fmt: skip

    kd = None
    parent = copy.deepcopy(model).eval() if refit else None  # what the refit reproduces
    model.filter_grid = filter_grid
    if distill != "none":  # the model as passed in, frozen, teaches its pruned self
        kd = SchNetDistillation(
            teacher=copy.deepcopy(model),
            student=model,
            mode=distill,
            output_weight=settings.distill_output_weight,
            feature_weight=settings.distill_feature_weight,
            adapter=True if "atom_basis" in kind.split("+") else None,
        )
    tune: dict[str, Any] = {}
    shaping = engine_cls.trains_first
    extra: dict[str, Any] = {}
    if gated or gradual or shaping:  # gates that close, masks that grow, weights that shape
        if gated:
            engine.attach(model)
        first = None if finetune_steps is None else finetune_steps // 2
        cap = "" if first is None else f" (at most {first} steps)"
        what = ("training gates" if gated else "removing units gradually" if gradual
                else f"training with the {method} regularizer")  # fmt: skip
        log(f"{method}: {what} for {finetune_minutes / 2:g} min{cap}")
        tune["gated" if gated else "gradual" if gradual else "regularized"] = phase = finetune(
            model,
            data,
            split.train,
            val_idx,
            minutes=finetune_minutes / 2,
            max_steps=first,
            lr=lr,
            batch_size=batch_size,
            pruner=engine,
            seed=seed,
            select_best=False,
            start=before_val,  # nothing is removed yet: the model is the dense one
            progress=progress,
            log=log,
            distill=kd,
        )
        if gated:
            tune["gate_sparsity"] = engine.gate_sparsity()
            engine.apply(model, sparsity)
        elif rank_energy is not None:
            engine.project(model, engine.ranks_for_energy(model, rank_energy))
        elif threshold is not None:
            extra["learned_sparsity"] = engine.learned_sparsity(model, threshold)
            engine.threshold(model, threshold)
        else:
            engine.apply(model)  # the final sparsity, whatever the time budget allowed
        remaining = finetune_minutes / 2
        steps_left = None if first is None else finetune_steps - phase["steps"]
    else:
        engine.apply(model)
        remaining = finetune_minutes
        steps_left = finetune_steps
    if by_rank:  # two thinner layers for each projected one, fine-tuned as such
        extra["ranks"] = dict(engine.ranks)
        extra["low_rank"] = {k: list(v) for k, v in engine.factorize(model).items()}
    if refit:
        grid, model.filter_grid = model.filter_grid, 0
        picked = split.train[: settings.refit_molecules]
        batches = [data.collate(picked[i : i + 128]) for i in range(0, len(picked), 128)]
        extra["refit"] = {
            "molecules": len(picked),
            "val_mae_removed": evaluate_model(model, data, val_idx)["mae"],
            **refit_blocks(model, parent, [(b.z, b.pos, b.batch) for b in batches], layers=refit),
        }
        model.filter_grid = grid
        del parent
    masked_val = evaluate_model(model, data, val_idx)
    log(
        f"pruned with {method}: val MAE {before_val['mae']:.4f} -> {masked_val['mae']:.4f} before fine-tuning"
    )
    if remaining > 0 and (steps_left is None or steps_left > 0):
        tune["masked"] = finetune(
            model,
            data,
            split.train,
            val_idx,
            minutes=remaining,
            max_steps=steps_left,
            lr=lr,
            batch_size=batch_size,
            seed=seed + 1,
            start=masked_val,
            progress=progress,
            log=log,
            lr_schedule=lr_schedule,
            min_lr=min_lr,
            distill=kd,
            ema=ema,
        )
    if kd is not None:
        kd.close()
    model.filter_grid = 0
    if not by_rank and kind != "weight":  # (rank engines split their layers before fine-tuning)
        extra["blocks_removed"] = shrink_schnet(model, groups)["blocks_removed"]
    elif not by_rank:
        remove_masks(model)
    after_val = evaluate_model(model, data, val_idx)
    after = model_stats(model, data, val_idx)
    report = {
        "method": method,
        "kind": kind,
        "sparsity": sparsity,
        "blocks": list(blocks) if blocks is not None else list(range(len(model.interactions))),
        "val_mae_before": before_val["mae"],
        "val_mae_pruned_untuned": masked_val["mae"],
        "val_mae_after": after_val["mae"],
        "before": before,
        "after": after,
        "finetune": tune,
        "compression": before["params"] / max(after["nonzero_params"], 1),
        "lr": lr,
        "lr_schedule": lr_schedule,
        "distill": kd.settings() if kd is not None else {"mode": "none"},
        "gradual": gradual,
        "filter_grid": filter_grid,
        "ema": ema,
        **extra,
    }
    if not math.isfinite(after_val["mae"]):
        raise FloatingPointError("the pruned model predicts non-finite values")
    return report
