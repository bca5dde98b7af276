"""The rows of ``benchmarks/qm9_prune.py``: the parent, every pruning engine and every control
under one budget, each row saved as soon as it is done (imported by that script; see its
docstring for what each row is)."""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any

from harness import RowStore, error_text

from chemprune.molecules.checkpoint import load_model, model_checkpoint
from chemprune.molecules.data.batching import batch_indices
from chemprune.molecules.data.splits import make_split, standard_sizes, subset_sizes
from chemprune.molecules.data.targets import get_target
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.distill import SchNetDistillation
from chemprune.pipeline.compress_schnet import prune_schnet, split_from_checkpoint
from chemprune.pipeline.evaluate import evaluate_model
from chemprune.pipeline.finetune import finetune
from chemprune.pipeline.prune_settings import PruneSettings
from chemprune.pipeline.train import TrainSettings, train
from chemprune.pipeline.train_state import split_dict

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("attention", "autoprune", "magnitude", "random")
#: issue 21's rows: class-discriminative kernel pruning (the classes: quantile bins of the
#: target) with the symmetric divergence and with ``--evolved`` (a function or an evolution JSON)
DISCRIMINATIVE = ("cdc", "evolved")
#: issue 20's rows: structured sparsity learning of the kernels and of the depth (blocks), force
#: regularisation + low rank of the atom-wise layers (their sparsity: the share of each rank)
LEARNED = ("ssl", "ssl_depth", "force", "combo")
CONTROLS = ("dense_continued", "scratch_b", "torch_pruning")
METHODS = (*ENGINES, *DISCRIMINATIVE, *LEARNED, *CONTROLS)
MARKERS = {"attention": "o", "autoprune": "s", "magnitude": "^", "random": "v"}
MARKERS |= {"cdc": "p", "evolved": "d"}
MARKERS |= {"ssl": "<", "ssl_depth": ">", "force": "*", "combo": "h"}
MARKERS |= {"torch_pruning": "D", "scratch_b": "P", "dense_continued": "X"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- the parent
def settings_for(args, target: str, filters: int | None = None) -> TrainSettings:
    return TrainSettings(
        target=target, hidden_channels=args.hidden, filter_channels=filters or args.filters,
        num_interactions=args.interactions, epochs=args.dense_epochs or 100_000, seed=args.seed,
        batch_size=args.batch_size, lr=args.dense_lr, filter_grid=args.filter_grid,
    )  # fmt: skip


def dense_model(args, data, target: str) -> tuple[SchNet, Any, dict]:
    """Train the parent (or load it from ``--dense``); returns model, split, info."""
    for path in args.dense:
        model, ckpt = load_model(path)
        if ckpt["target"]["name"] == target:
            log(f"{target}: dense model from {path}")
            info = {"loaded": str(path), "epochs": args.parent_epochs}
            return model, split_from_checkpoint(ckpt, len(data)), info
    sizes = standard_sizes(len(data)) if args.subset == 0 else subset_sizes(args.subset, len(data))
    split = make_split(len(data), sizes, args.seed)
    settings = settings_for(args, target)
    out = Path(args.work_dir) / f"dense_{target}"
    log(f"{target}: training the parent ({args.dense_minutes:g} min, {args.dense_epochs} epochs)")
    resume = (out / "last.pt").exists()  # an interrupted benchmark goes on where it stopped
    summary = train(
        data, split, out, settings=settings, max_minutes=args.dense_minutes, progress=False,
        log=log, device=args.device, resume=resume,
    )  # fmt: skip
    model, _ = load_model(summary["best"] or summary["last"])
    info = {"trained": summary, "settings": settings.to_dict(), "epochs": summary["epochs_done"]}
    return model, split, info


# ---------------------------------------------------------------------- the rows
def tune_options(args) -> dict[str, Any]:
    """The one fine-tuning recipe every row gets."""
    return {
        "finetune_minutes": args.finetune_minutes, "finetune_steps": args.finetune_steps,
        "lr": args.lr, "lr_schedule": args.lr_schedule, "min_lr": args.min_lr,
        "batch_size": args.batch_size, "seed": args.seed, "ema": args.ema,
    }  # fmt: skip


def run_engine(method: str, sparsity: float, dense: SchNet, mset, split, args):
    model = copy.deepcopy(dense).to(mset.device)
    options: dict[str, Any] = {}
    if method in ("autoprune", "attention"):
        options["lam"] = args.lam
    if method == "random":
        options["seed"] = args.seed
    engine = method
    if method in DISCRIMINATIVE:
        from chemprune.engines.prune.evolve import resolve_function

        engine = "cdc"
        options["target_bins"] = args.target_bins
        options["function"] = resolve_function(
            args.evolved if method == "evolved" else "symmetric_divergence"
        )
    settings = PruneSettings(
        method=engine, sparsity=sparsity, kind=args.kind, engine_options=options,
        distill=args.distill, distill_output_weight=args.distill_output_weight,
        distill_feature_weight=args.distill_feature_weight, **tune_options(args),
        gradual=args.gradual and method in ("magnitude", "random"),
        filter_grid=args.filter_grid, refit=args.refit,
    )  # fmt: skip
    report = prune_schnet(model, mset, split, settings, progress=False, log=log)
    report.pop("before", None)
    return model, report


def run_learned(method: str, sparsity: float, dense: SchNet, mset, split, args):
    """ssl (kernel groups), ssl_depth (whole blocks: ``sparsity`` of them) or force (atom-wise
    layers at ``sparsity`` of their rank, or ``--rank-energy``), the same budget: the first
    half trains with the regularizer, the second fine-tunes what is left. combo chains
    attention kernel pruning at ``sparsity``, ssl_depth at ``--depth-sparsity`` and force, each
    with a third of the budget (so the total is the other rows'), each stage distilled from the
    model it starts from (the first from the dense parent)."""
    model = copy.deepcopy(dense).to(mset.device)
    stages = {
        "ssl": [("ssl", "kernel", sparsity)], "ssl_depth": [("ssl", "depth", sparsity)],
        "force": [("force", args.force_layers, sparsity)],
        "combo": [("attention", "kernel", sparsity), ("ssl", "depth", args.depth_sparsity),
                  ("force", args.force_layers, sparsity)],
    }[method]  # fmt: skip
    tune = tune_options(args)
    if len(stages) > 1:
        tune["finetune_steps"] = max(1, tune["finetune_steps"] // len(stages))
        tune["finetune_minutes"] = tune["finetune_minutes"] / len(stages)
    reports = []
    for engine, kind, sp in stages:
        options: dict[str, Any] = {}
        if engine in ("ssl", "force"):
            options["strength"] = args.ssl_strength if engine == "ssl" else args.force_strength
        if engine == "attention":
            options["lam"] = args.lam
        energy = args.rank_energy if engine == "force" else None
        settings = PruneSettings(
            method=engine, sparsity=0.0 if energy else sp, kind=kind, engine_options=options,
            distill=args.distill, distill_output_weight=args.distill_output_weight,
            distill_feature_weight=args.distill_feature_weight, rank_energy=energy, **tune,
        )  # fmt: skip
        report = prune_schnet(model, mset, split, settings, progress=False, log=log)
        report.pop("before", None)
        reports.append(report)
    return model, reports[0] if len(reports) == 1 else {"stages": reports}


def run_finetune_only(model: SchNet, dense: SchNet | None, mset, split, args) -> dict:
    """The fine-tuning phase of ``prune_schnet`` for a model pruned elsewhere (or not at all)."""
    o = tune_options(args)
    kd = None
    if dense is not None and args.distill != "none":
        kd = SchNetDistillation(
            teacher=copy.deepcopy(dense).to(mset.device), student=model, mode=args.distill,
            output_weight=args.distill_output_weight, feature_weight=args.distill_feature_weight,
        )  # fmt: skip
    model.filter_grid = args.filter_grid
    if kd is not None:
        kd.teacher.filter_grid = args.filter_grid
    out = finetune(
        model, mset, split.train, split.val, minutes=o["finetune_minutes"], lr=o["lr"],
        seed=o["seed"] + 1, batch_size=o["batch_size"], max_steps=o["finetune_steps"],
        lr_schedule=o["lr_schedule"], min_lr=o["min_lr"], distill=kd, progress=False, log=log,
        ema=o["ema"],
    )  # fmt: skip
    model.filter_grid = 0
    if kd is not None:
        kd.close()
    return out


def run_dense_continued(dense: SchNet, mset, split, args):
    model = copy.deepcopy(dense).to(mset.device)
    return model, {"finetune": run_finetune_only(model, None, mset, split, args)}


def kept(width: int, sparsity: float) -> int:
    return max(1, width - int(round(sparsity * width)))


def run_scratch_b(sparsity: float, dense: SchNet, info: dict, mset, data, split, args, target):
    """The kernel-pruned architecture trained from scratch with the parent's recipe and
    epochs plus the fine-tuning steps (rounded up to whole epochs)."""
    hidden = {blk.filter_network.hidden_channels for blk in dense.interactions}
    widths = set(dense.filter_channels) | (hidden if args.kind == "kernel" else set())
    if len(widths) != 1 or args.kind not in ("kernel", "filter"):
        raise ValueError("scratch_b needs --kind kernel or filter and one width in every block")
    filters = kept(widths.pop(), sparsity)
    per_epoch = len(batch_indices(split.train, args.batch_size, shuffle=False, seed=0))
    if info.get("epochs") is None:
        raise ValueError("scratch_b needs the parent's epochs: pass --parent-epochs with --dense")
    epochs = int(info["epochs"]) + math.ceil(args.finetune_steps / per_epoch)
    settings = settings_for(args, target, filters=filters)
    settings.epochs = epochs
    if args.kind == "filter":  # the filter networks keep their hidden units
        arch = dense.config()
        n = len(dense.interactions)
        settings.architecture = arch | {"filter_channels": [filters] * n}
    out = Path(args.work_dir) / f"scratch_{target}_{sparsity:g}"
    minutes = (args.dense_minutes or 0) + args.finetune_minutes
    summary = train(
        data, split, out, settings=settings, max_minutes=minutes, progress=False, log=log,
        device=args.device, resume=(out / "last.pt").exists(),
    )  # fmt: skip
    model, _ = load_model(summary["best"] or summary["last"])
    return model.to(mset.device), {"trained": summary, "epochs": epochs, "filters": filters}


def run_torch_pruning(sparsity: float, dense: SchNet, mset, split, args):
    """Torch-Pruning's MetaPruner (L1) on every width, then the same fine-tuning."""
    import torch_pruning as tp

    model = copy.deepcopy(dense).to(mset.device)
    b = mset.collate(split.train[:8])
    importance = tp.importance.MagnitudeImportance(p=1)
    tp.pruner.MetaPruner(
        model, (b.z, b.pos, b.batch), importance, pruning_ratio=sparsity,
        ignored_layers=[model.lin2],
    ).step()  # fmt: skip
    untuned = evaluate_model(model, mset, split.val)["mae"]
    log(f"torch_pruning {sparsity}: val MAE {untuned:.4f} before fine-tuning")
    tune = run_finetune_only(model, dense, mset, split, args)
    return model, {"val_mae_pruned_untuned": untuned, "finetune": tune}


def row_store(args, target: str) -> RowStore:
    """The target's finished rows: ``--work-dir/rows/<target>/<method>_<sparsity:g>.{json,pt}``."""
    return RowStore(
        Path(args.work_dir) / "rows" / target, only_done=args.only_done,
        log=lambda msg: log(f"{target}: {msg}"),
    )  # fmt: skip


def run_rows(target: str, dense: SchNet, info: dict, data, mset, split, args) -> list[dict]:
    """Every (method, sparsity) row, each saved when done and skipped when already saved; a
    failed row is not saved (a rerun tries it again)."""
    todo: list[tuple[str, float]] = []
    for method in args.methods:
        if method == "dense_continued":
            todo.append((method, 0.0))
        elif method == "torch_pruning":
            todo += [(method, s) for s in args.tp_ratios]
        elif method == "ssl_depth":
            todo.append((method, args.depth_sparsity))
        elif method == "force" and args.rank_energy:
            todo.append((method, args.rank_energy))
        else:
            todo += [(method, s) for s in args.sparsities]
    store = row_store(args, target)
    pairs = {f"{method}_{sp:g}": (method, sp) for method, sp in todo}
    rows = []
    for key, saved in store.resume(f"{method}_{sp:g}" for method, sp in todo):
        if saved is not None:
            rows.append(saved)
            continue
        method, sp = pairs[key]
        log(f"{target}: {method} at sparsity {sp:g}")
        s0 = time.perf_counter()
        row: dict[str, Any] = {"target": target, "method": method, "sparsity": sp}
        try:
            if method in ENGINES or method in DISCRIMINATIVE:
                model, rep = run_engine(method, sp, dense, mset, split, args)
            elif method in LEARNED:
                model, rep = run_learned(method, sp, dense, mset, split, args)
            elif method == "dense_continued":
                model, rep = run_dense_continued(dense, mset, split, args)
            elif method == "scratch_b":
                model, rep = run_scratch_b(sp, dense, info, mset, data, split, args, target)
            else:
                model, rep = run_torch_pruning(sp, dense, mset, split, args)
        except Exception as err:  # recorded verbatim; the run goes on
            row["error"] = error_text(err)
            log(f"{target}: {method} failed: {row['error']}")
            rows.append(row)
            continue
        row["report"] = rep
        row["seconds"] = time.perf_counter() - s0
        model.cpu()
        checkpoint = None
        if isinstance(model, SchNet):
            row["model"] = str(store.model_path(key))
            checkpoint = model_checkpoint(
                model, target=tdict(target), data=split_dict(split, "qm9pack")
            )
        else:
            row["error"] = f"not a chemprune SchNet after pruning: {type(model).__name__}"
        store.save(key, row, model_checkpoint=checkpoint)
        rows.append(row)
    return rows


def tdict(target: str) -> dict[str, str]:
    t = get_target(target)
    return {"name": t.name, "unit": t.unit, "readout": t.readout, "description": t.description}
