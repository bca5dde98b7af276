"""Training SchNet on QM9: Adam or SGD, plateau or cosine LR, validation MAE, budget, exact resume.

A run folder holds::

    last.pt      resumable state (model, optimizer, scheduler, position in the epoch, history)
    best.pt      the model with the lowest validation MAE so far (what predict/evaluate use)
    history.jsonl  one line per epoch

Batch order depends only on ``(seed, epoch)``, so a run resumed from ``last.pt`` (saved at every
epoch end, every ``checkpoint_every`` steps and on SIGINT/SIGTERM) continues exactly where it
stopped: the same batches, optimizer moments and learning-rate schedule. Under torchrun (a
``DistContext`` with several ranks) the same holds for the same number of processes; the random
draws of TernGrad and SmoothOut depend only on ``(seed, rank, step)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from chemprune.common.atomic import atomic_save
from chemprune.common.progress import progress_bar
from chemprune.engines.distributed.context import DistContext, bytes_written
from chemprune.engines.distributed.smoothout import SmoothOut
from chemprune.molecules.checkpoint import model_checkpoint
from chemprune.molecules.data.batching import MoleculeSet, batch_indices
from chemprune.molecules.data.qm9 import QM9Data
from chemprune.molecules.data.splits import Split
from chemprune.molecules.data.targets import atomref_ev, get_target, target_statistics
from chemprune.molecules.models.schnet import SchNet
from chemprune.pipeline.evaluate import prediction_errors
from chemprune.pipeline.optim import LRSchedule, make_optimizer
from chemprune.pipeline.train_state import (
    SignalGuard,
    TrainSettings,
    resume_state,
    run_lock,
    split_dict,
    target_dict,
)
from chemprune.pipeline.train_step import (
    accumulate_gradients,
    clip_gradients,
    steps_per_epoch,
    usable,
)

__all__ = ["TrainSettings", "TrainingDiverged", "TrainingInterrupted", "train", "target_statistics"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM: state was saved to ``last.pt``; resume with ``--resume``."""


def train(
    data: QM9Data,
    split: Split,
    out_dir: str | Path,
    *,
    settings: TrainSettings,
    resume: bool = False,
    max_minutes: float | None = None,
    checkpoint_every: int = 0,
    data_source: str = "qm9pack",
    progress: bool = True,
    log: Callable[[str], None] = print,
    device: torch.device | str = "cpu",
    context: DistContext | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run in ``out_dir``; returns a summary with the best validation MAE.

    Args:
        data: molecules and properties.
        split: train/val/test indices into ``data``.
        out_dir: run folder (``last.pt``, ``best.pt``, ``history.jsonl``).
        settings: hyperparameters; on resume they must equal the saved ones except ``epochs``.
        resume: continue from ``out_dir/last.pt``.
        max_minutes: stop (resumably) after this much training time in this call.
        checkpoint_every: also save ``last.pt`` every N optimizer steps (0: epoch ends only).
        data_source: provenance string stored in checkpoints.
        progress: show a progress bar (loss, MAE, ETA) when stderr is a terminal; the
            one-line-per-epoch log comes either way.
        log: where one-line messages go.
        device: where the model and the molecules live while training (``cpu``, ``cuda``, ...);
            checkpoints are always written with CPU tensors.
        context: this process's place in a multi-process run (``DistContext.from_env()`` under
            torchrun): each rank takes its share of every global batch of
            ``settings.batch_size`` molecules, gradients are exchanged with
            ``settings.comm_hook``, rank 0 alone logs and writes files. Default: one process.

    Raises:
        chemprune.common.runfolder.RunFolderBusy: another process is writing into ``out_dir``.
        FileExistsError: ``out_dir`` already holds a run and ``resume`` is false.
        ValueError: ``settings`` that cannot run (:meth:`TrainSettings.check`).
    """
    settings.check()
    out = Path(out_dir)
    ctx = context or DistContext.single()
    with run_lock(out, ctx, what="chemprune train"):
        return _train(
            data,
            split,
            out,
            settings=settings,
            resume=resume,
            max_minutes=max_minutes,
            checkpoint_every=checkpoint_every,
            data_source=data_source,
            progress=progress,
            log=log,
            device=device,
            ctx=ctx,
        )


def _train(
    data: QM9Data,
    split: Split,
    out: Path,
    *,
    settings: TrainSettings,
    resume: bool,
    max_minutes: float | None,
    checkpoint_every: int,
    data_source: str,
    progress: bool,
    log: Callable[[str], None],
    device: torch.device | str,
    ctx: DistContext,
) -> dict[str, Any]:
    """:func:`train`'s body, run while this process holds the run folder's lock."""
    if not ctx.is_main:
        progress, log = False, _quiet
    last_path, best_path, hist_path = out / "last.pt", out / "best.pt", out / "history.jsonl"
    target = get_target(settings.target)
    atomref = atomref_ev(target)
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(target))
    if ctx.distributed and settings.batch_size < ctx.world_size:
        raise ValueError(
            f"batch size {settings.batch_size} is smaller than the {ctx.world_size} processes; "
            "each process needs at least one molecule per step"
        )
    state = ctx.on_main(
        lambda: resume_state(out, settings, split, resume=resume, world_size=ctx.world_size)
    )

    torch.manual_seed(settings.seed)
    mean, std = target_statistics(mset, split.train, target, atomref)
    model = SchNet(
        **settings.model_kwargs(), readout=target.readout, mean=mean, std=std, atomref=atomref
    )
    if settings.init and state is None:  # a resumed run has its own weights
        model.load_state_dict(_init_model(settings.init).state_dict())
    model.to(device)
    model.filter_grid = settings.filter_grid
    distill = _distillation(settings, model, split, target.name, ctx, device, len(data))
    opt = make_optimizer(
        model.parameters(), name=settings.optimizer, lr=settings.lr, momentum=settings.momentum
    )
    total_steps = settings.epochs * steps_per_epoch(split.train, settings.batch_size, ctx)
    sched = LRSchedule(
        opt,
        kind=settings.lr_schedule,
        lr=settings.lr,
        min_lr=settings.min_lr,
        lr_factor=settings.lr_factor,
        lr_patience=settings.lr_patience,
        total_steps=total_steps,
        warmup_steps=settings.warmup_steps,
    )
    epoch, step_in_epoch, global_step = 0, 0, 0
    best_val, elapsed_total = math.inf, 0.0
    history: list[dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["state_dict"])
        tr = state["training"]
        opt.load_state_dict(tr["optimizer"])
        sched.load_state_dict(tr["scheduler"])
        epoch, step_in_epoch, global_step = tr["epoch"], tr["step_in_epoch"], tr["global_step"]
        best_val, elapsed_total = tr["best_val"], tr["elapsed_s"]
        history = list(tr["history"])
        if ctx.is_main:
            # history.jsonl may hold a row written after last.pt was saved: rewrite it
            hist_path.write_text("".join(json.dumps(row) + "\n" for row in history))
        log(
            f"resuming {last_path}: epoch {epoch + 1}, step {step_in_epoch}, "
            f"best val MAE {best_val:.4f} {target.unit}"
        )
    options = {}
    if settings.comm_hook == "terngrad":
        options = {
            "terngrad_min_size": settings.terngrad_min_size,
            "terngrad_full_precision": [g for g in settings.terngrad_fp32.split(",") if g],
        }
    net, hook = ctx.wrap(model, hook=settings.comm_hook, seed=settings.seed, **options)
    smooth = SmoothOut(
        amplitude=settings.smoothout,
        adaptive=settings.smoothout_adaptive,
        seed=settings.seed,
        rank=ctx.rank,
        chunk=settings.smoothout_chunk,
        schedule=settings.smoothout_schedule,
        total_steps=total_steps,
    )

    provenance = split_dict(split, data_source)
    mset = mset.to(device)
    tdict = target_dict(target)

    def save_last() -> None:
        if not ctx.is_main:
            return
        ckpt = model_checkpoint(
            model, target=tdict, data=provenance, metrics={"best_val_mae": best_val}
        )
        ckpt["training"] = {
            "settings": settings.to_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "best_val": best_val,
            "elapsed_s": elapsed_total + (time.perf_counter() - t_start),
            "history": history,
            "world_size": ctx.world_size,
        }
        atomic_save(ckpt, last_path)

    t_start = time.perf_counter()
    deadline = None if max_minutes is None else t_start + 60.0 * max_minutes
    stopped = None

    with SignalGuard() as guard:
        while epoch < settings.epochs and stopped is None:
            if sched.exhausted() and history:
                stopped = "learning rate reached min_lr"
                break
            net.train()
            order_seed = settings.seed * 1_000_003 + epoch
            chunks = batch_indices(split.train, settings.batch_size, shuffle=True, seed=order_seed)
            chunks = usable(chunks, ctx)
            n_batches = len(chunks)
            bar = None
            if progress:
                bar = progress_bar(
                    total=n_batches,
                    initial=step_in_epoch,
                    leave=False,
                    dynamic_ncols=True,
                    desc=f"epoch {epoch + 1}/{settings.epochs}",
                    mininterval=1.0,
                )
            sum_abs, sum_sq, count = 0.0, 0.0, 0
            step_time, step_bytes, steps_here = 0.0, 0, 0
            norm_sum, norm_max = 0.0, 0.0  # total gradient norms (before clipping)
            for chunk in chunks[step_in_epoch:]:
                t0, w0 = time.perf_counter(), bytes_written()
                hook.on_step(global_step)
                err, loss = accumulate_gradients(
                    net, model, mset, chunk, ctx=ctx, smooth=smooth, step=global_step,
                    distill=distill,
                )  # fmt: skip
                past_deadline = deadline is not None and time.perf_counter() > deadline
                bad, signalled, past_deadline = ctx.any(
                    not torch.isfinite(loss), guard.signum is not None, past_deadline
                )
                if bad:  # (a resume keeps --lr and repeats the same steps: advise none)
                    again = (
                        f"{last_path} holds the state before it, but a resume keeps --lr "
                        f"{settings.lr:g}: start again in another --out with a lower --lr"
                        if last_path.exists()
                        else f"start again with a lower --lr than {settings.lr:g}"
                    )
                    raise TrainingDiverged(
                        f"loss became {_loss_text(loss, ctx)} at epoch {epoch + 1}, step "
                        f"{step_in_epoch + 1} (lr {opt.param_groups[0]['lr']:.2e}); nothing was "
                        f"saved from this step; {again} (or clip gradients: --max-grad-norm)."
                    )
                grad_norm = clip_gradients(model, settings.max_grad_norm)
                norm_sum, norm_max = norm_sum + grad_norm, max(norm_max, grad_norm)
                opt.step()
                sched.after_step()
                w1 = bytes_written()
                step_time += time.perf_counter() - t0
                step_bytes += (w1 - w0) if w0 is not None and w1 is not None else 0
                steps_here += 1
                step_in_epoch += 1
                global_step += 1
                with torch.no_grad():
                    sum_abs += float(err.abs().sum())
                    sum_sq += float((err * err).sum())
                    count += err.numel()
                if bar is not None:
                    bar.update(1)
                    if step_in_epoch % 20 == 0:
                        bar.set_postfix(
                            loss=f"{loss.item():.4g}", mae=f"{sum_abs / count:.4g}", refresh=False
                        )
                if checkpoint_every and global_step % checkpoint_every == 0:
                    save_last()
                if signalled:
                    stopped = f"signal {guard.signum or 'on another rank'}"
                    break
                if past_deadline:
                    stopped = "time budget reached"
                    break
            if bar is not None:
                bar.close()
            if step_in_epoch < n_batches:  # stopped mid-epoch
                save_last()
                break
            # end of epoch: validate, schedule, save
            val = ctx.evaluate(
                lambda ids: prediction_errors(model, mset, ids, settings.eval_batch_size),
                split.val,
            )
            sched.after_epoch(val["mae"])
            improved = val["mae"] < best_val
            if improved:
                best_val = val["mae"]
                if ctx.is_main:
                    atomic_save(
                        model_checkpoint(
                            model,
                            target=tdict,
                            data=provenance,
                            metrics={
                                "val_mae": val["mae"],
                                "val_rmse": val["rmse"],
                                "epoch": epoch + 1,
                            },
                        ),
                        best_path,
                    )
            sum_abs, sum_sq, count = ctx.sum([sum_abs, sum_sq, float(count)])
            row = {
                "epoch": epoch + 1,
                "train_mae": sum_abs / max(count, 1),
                "train_rmse": math.sqrt(sum_sq / max(count, 1)),
                "val_mae": val["mae"],
                "val_rmse": val["rmse"],
                "lr": opt.param_groups[0]["lr"],
                "time_s": elapsed_total + time.perf_counter() - t_start,
                "step_s": step_time / max(steps_here, 1),
                "grad_norm": norm_sum / max(steps_here, 1),
                "grad_norm_max": norm_max,
            }
            if smooth.amplitude:  # the amplitude of the epoch's last step
                row["smoothout_amplitude"] = smooth.amplitude_at(global_step - 1)
            if ctx.distributed:
                row["processes"] = ctx.world_size
                row["sent_bytes_per_step"] = step_bytes / max(steps_here, 1)
            history.append(row)
            if ctx.is_main:
                with open(hist_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
            log(
                f"epoch {epoch + 1:4d}  train MAE {row['train_mae']:.4f}  val MAE {val['mae']:.4f} "
                f"{target.unit}{'  *' if improved else ''}  lr {row['lr']:.2e}  "
                f"{row['time_s'] / 60:.1f} min"
            )
            epoch += 1
            step_in_epoch = 0
            save_last()
            if stopped is None and deadline is not None:
                if ctx.any(time.perf_counter() > deadline)[0]:
                    stopped = "time budget reached"

    if stopped and stopped.startswith("signal"):
        raise TrainingInterrupted(
            f"interrupted by {stopped}; state saved to {last_path}; continue with --resume"
        )
    return {
        "out_dir": str(out),
        "best": str(best_path) if best_path.exists() else None,
        "last": str(last_path),
        "epochs_done": epoch,
        "best_val_mae": best_val,
        "unit": target.unit,
        "stopped": stopped or "epochs done",
        "elapsed_s": elapsed_total + time.perf_counter() - t_start,
        "processes": ctx.world_size,
    }


def _init_model(path: str, model: SchNet | None = None) -> SchNet:
    from chemprune.molecules.checkpoint import load_model

    if model is None:
        model, _ = load_model(path)
    if "tabulated" in model.block_kinds:
        raise ValueError(
            f"--init {path} has tabulated filters, which do not train: start from the exact "
            "model and tabulate the result"
        )
    return model


def init_run(path: str | Path, target: str, num_molecules: int) -> tuple[dict[str, Any], Split]:
    """The architecture and the split of a trained checkpoint a run starts from (``--init``:
    a pruned model fine-tuned for longer, an imported one trained on); its target must be the
    run's, and its validation and test molecules stay the run's."""
    from chemprune.molecules.checkpoint import load_model
    from chemprune.pipeline.compress_schnet import split_from_checkpoint

    model, ckpt = load_model(path)
    _init_model(str(path), model)
    name = ckpt.get("target", {}).get("name")
    if name != target:
        raise ValueError(f"--init {path} predicts {name!r}, this run {target!r} (give --target)")
    try:
        split = split_from_checkpoint(ckpt, num_molecules)
    except ValueError as err:
        raise ValueError(f"--init {path}: {err}") from None
    return model.config(), split


def _distillation(
    settings: TrainSettings, model: SchNet, split: Split, target: str, ctx, device, num_molecules
):
    """The teacher's terms (:class:`SchNetDistillation`) when the run distils, else ``None``;
    the teacher must predict the same target and have been trained on the same split (else
    the student's validation and test molecules would be ones the teacher learned)."""
    if not settings.teacher or settings.distill == "none":
        return None
    import numpy as np

    from chemprune.molecules.checkpoint import load_model
    from chemprune.molecules.schnet.distill import SchNetDistillation
    from chemprune.pipeline.compress_schnet import split_from_checkpoint

    if ctx.distributed:
        raise ValueError("distillation from a teacher runs in one process (not with --nproc)")
    teacher, ckpt = load_model(settings.teacher)
    if ckpt.get("target", {}).get("name") != target:
        raise ValueError(
            f"the teacher {settings.teacher} predicts {ckpt.get('target', {}).get('name')!r}, "
            f"this run {target!r}"
        )
    try:
        theirs = split_from_checkpoint(ckpt, num_molecules)
    except ValueError as err:
        raise ValueError(f"the teacher {settings.teacher}: {err}") from None
    for part in ("train", "val", "test"):
        if not np.array_equal(np.sort(theirs.part(part)), np.sort(split.part(part))):
            raise ValueError(
                f"the teacher {settings.teacher} was trained on another split (its {part} "
                "molecules differ): give the same --subset and --seed as its run"
            )
    return SchNetDistillation(
        teacher=teacher.to(device), student=model, mode=settings.distill,
        output_weight=settings.distill_output_weight,
        feature_weight=settings.distill_feature_weight, adapter=False,
        teacher_blocks=settings.teacher_blocks,
    )  # fmt: skip


def _quiet(message: str) -> None:
    """The log of ranks other than 0."""


def _loss_text(loss: torch.Tensor, ctx: DistContext) -> str:
    value = loss.item()
    return (
        str(value) if math.isfinite(value) or not ctx.distributed else f"{value} on rank {ctx.rank}"
    )
