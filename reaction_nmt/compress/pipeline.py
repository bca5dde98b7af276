"""The ``reaction-nmt compress`` pipeline: structured removal, OLMP, retraining, storage.

1. load the checkpoint into a translator (:class:`~.evaluate.Evaluator`) and measure the metric;
2. ``structured``: mask the weakest heads / feed-forward units (the same count per layer),
   retrain with the masks, remove them (:mod:`.structured`) and reload the smaller model;
3. ``strategy``: OLMP thresholds per set under ``metric >= before - max_drop``, with masked
   retraining rounds (:mod:`.olmp`, :mod:`.retrain`);
4. write the result (``dense``, ``sparse`` or ``sparse-int8``, :mod:`.storage`) and report.

With a ``teacher``, every retraining round (2 and 3) is word-level distillation from it; with
``gradual``, every OLMP retraining round also tightens the masks towards a target sparsity
(:mod:`.gradual`) before the next search checks the constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from torch import nn

from reaction_nmt.compress.checkpoint import export_checkpoint, save_atomic
from reaction_nmt.compress.errors import CompressError
from reaction_nmt.compress.gradual import GradualPruning
from reaction_nmt.compress.olmp import WARM_START

__all__ = ["compress", "parameter_count"]


def parameter_count(model: nn.Module) -> int:
    """Distinct parameters (tied embeddings once), masked entries included."""
    seen, total = set(), 0
    for _, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _structured(working, template, kinds, keep, retrainer, log) -> tuple[dict, dict]:
    from reaction_nmt.compress.structured import (
        ff_groups,
        head_groups,
        mask_structured,
        remove_structured,
        shrunk_opt,
        structured_keep,
    )  # fmt: skip

    built = {k: list(v.shape) for k, v in working.named_parameters(remove_duplicate=False)}
    groups = (head_groups(working) if "heads" in kinds else []) + (
        ff_groups(working) if "ff" in kinds else []
    )
    if not groups:
        raise CompressError("the model has no attention heads or feed-forward blocks to prune")
    sel = structured_keep(
        working, groups, {"heads": keep.get("heads", 1.0), "ff": keep.get("ff", 1.0)}
    )
    mask_structured(working, sel)
    info: dict = {"retrain": None}
    if retrainer is not None:
        info["retrain"] = retrainer(working)
        log(f"  structured: retrained {info['retrain']['steps']} steps with masks")
    params_before = parameter_count(working)
    report = remove_structured(working, groups)
    heads = [report[g.name] for g in groups if g.tags[0] == "heads"]
    ffs = [report[g.name] for g in groups if g.tags[0] == "ff"]
    info.update(
        heads_before=sum(b for b, _ in heads), heads_after=sum(a for _, a in heads),
        ff_before=sum(b for b, _ in ffs), ff_after=sum(a for _, a in ffs),
        params_before=params_before, params_after=parameter_count(working),
        per_group={k: list(v) for k, v in report.items()},
    )  # fmt: skip
    opt = shrunk_opt(template["opt"], working, built)
    shrunk = export_checkpoint(working, template, opt=opt)
    if shrunk.get("optim"):  # Adam's moments no longer fit; keep the step (learning rate)
        shrunk["optim"] = {k: v for k, v in shrunk["optim"].items() if k != "optimizer"}
    return shrunk, info


def _teacher_hook(teacher: Path, template: dict, *, temperature: float, alpha: float):
    """The word-level distillation hook of the retraining rounds; the teacher must index
    ``template``'s vocabulary (checked here, before any search or training)."""
    from reaction_nmt.compress.hooks import onmt_hooks
    from reaction_nmt.distill import DistillError, WordLevelHook

    try:
        with onmt_hooks():  # the teacher may itself be a compressed (shrunk or sparse) model
            hook = WordLevelHook(teacher, temperature=temperature, alpha=alpha)
    except DistillError as e:
        raise CompressError(str(e)) from e
    if list(hook.vocab["tgt"]) != list(template["vocab"]["tgt"]):
        raise CompressError(
            f"teacher {teacher} has another vocabulary than the model to compress "
            f"({len(hook.vocab['tgt'])} vs {len(template['vocab']['tgt'])} tokens)"
        )
    return hook


def compress(
    *,
    model: Path,
    data_dir: Path,
    valid: tuple[Path, Path],
    out: Path,
    work_dir: Path,
    strategy: str | Mapping[str, Sequence[str]] | None = "type",
    metric: str = "top1",
    max_drop: float = 1.0,
    goal: float = 0.99,
    structured: set[str] | frozenset[str] = frozenset(),
    keep: Mapping[str, float] | None = None,
    storage: str = "sparse",
    valid_limit: int | None = 200,
    beam_size: int = 1,
    batch_size: int = 64,
    max_length: int = 300,
    budget: int = 40,
    warm_start: int = WARM_START,
    rounds: int = 1,
    retrain_steps: int = 0,
    retrain_seconds: float | None = None,
    seed: int = 0,
    teacher: Path | None = None,
    kd_alpha: float = 0.5,
    kd_temperature: float = 2.0,
    gradual: GradualPruning | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Compress ``model`` into ``out``; returns the report (see the module docstring).

    ``teacher`` (a checkpoint with ``model``'s vocabulary, usually ``model`` itself): every
    retraining round is word-level distillation from it, loss ``(1 - kd_alpha) CE(gold) +
    kd_alpha T^2 KL(teacher_T || student_T)`` at temperature ``kd_temperature``.
    """
    from reaction_nmt.compress.evaluate import Evaluator, read_slice, working_copy
    from reaction_nmt.compress.groups import group_aliases, partition, transformer_groups
    from reaction_nmt.compress.olmp import olmp_compress
    from reaction_nmt.compress.retrain import Retrainer
    from reaction_nmt.compress.storage import STORAGES, load_model, save_model

    if storage not in STORAGES:
        raise CompressError(f"unknown storage {storage!r}; use one of {STORAGES}")
    if strategy is None and not structured:
        raise CompressError("nothing to do: give a grouping strategy or --structured")
    if teacher is not None and not retrain_steps:
        raise CompressError("a teacher is used in retraining: give retraining steps too")
    if gradual is not None and (strategy is None or not retrain_steps or rounds < 1):
        raise CompressError(
            "gradual pruning happens in OLMP's retraining rounds: give a grouping strategy, "
            "retraining steps and at least one round"
        )
    template = load_model(model)
    sources, targets = read_slice(valid[0], valid_limit), read_slice(valid[1], valid_limit)
    opts = dict(metric=metric, beam_size=beam_size, batch_size=batch_size, max_length=max_length)
    ev = Evaluator(model, sources, targets, **opts)
    before = ev()
    log(f"validation {metric} of {model}: {before:.2f} ({len(sources)} reactions)")
    working = working_copy(ev.model)
    hook = None
    if teacher is not None:
        hook = _teacher_hook(teacher, template, temperature=kd_temperature, alpha=kd_alpha)
        log(f"retraining distilled from {teacher} (alpha {kd_alpha:g}, T {kd_temperature:g})")

    def retrainer_for(tpl: dict, sets=None):
        if not retrain_steps:
            return None
        return Retrainer(
            template=tpl, data_dir=data_dir, work_dir=work_dir, steps=retrain_steps,
            max_seconds=retrain_seconds, loss_hook=hook,
            gradual=gradual if sets is not None else None, sets=sets,
        )  # fmt: skip

    report: dict = {"model": str(model), "structured": None, "olmp": None}
    if teacher is not None:
        report["teacher"] = {"path": str(teacher), "alpha": kd_alpha, "temperature": kd_temperature}
    if structured:
        template, report["structured"] = _structured(
            working, template, structured, dict(keep or {}), retrainer_for(template), log
        )
        path = work_dir / "shrunk.pt"
        save_atomic(template, path)
        ev = Evaluator(path, sources, targets, **opts)
        working = working_copy(ev.model)
        report["structured"]["metric"] = ev()
        log(f"  structured: {metric} {report['structured']['metric']:.2f} after removal")
    if strategy is not None:
        sets = None
        if gradual is not None:
            sets = partition(transformer_groups(working), strategy, group_aliases(working))
            report["gradual"] = asdict(gradual)
        _, olmp = olmp_compress(
            working, ev, strategy=strategy, max_drop=max_drop, goal=goal, budget=budget,
            warm_start=warm_start, rounds=rounds if retrain_steps else 0,
            retrain=retrainer_for(template, sets), seed=seed, reference=before, log=log,
        )  # fmt: skip
        report["olmp"] = olmp.to_dict()
        after = olmp.metric_after
    else:
        after = ev(working)
    final = export_checkpoint(working, template)
    final["optim"] = None
    size = save_model(final, out, storage)
    dense = size if storage == "dense" else save_model(final, work_dir / "dense.pt", "dense")
    report.update(
        metric={"name": metric, "before": before, "after": after, "max_drop": max_drop,
                "constraint_met": after >= before - max_drop - 1e-9,
                "reactions": len(sources), "evaluations": ev.calls, "seconds": ev.seconds},
        out=str(out), storage=storage, size_bytes=size, dense_bytes=dense,
        parameters=parameter_count(working),
    )  # fmt: skip
    return report
