"""Fine-tuning a (masked or gated) SchNet with pruning-engine hooks in the loop.

The loss is the task's mean squared error, plus the distillation terms of a
:class:`~chemprune.molecules.schnet.distill.SchNetDistillation` when one is given (the dense parent
teaching its pruned copy). The learning rate is constant or follows a cosine from ``lr`` to
``min_lr`` over the budget (steps or time, whichever runs out first, so the rate has annealed
when either stops the run): with
``lr`` the parent's peak rate this is learning-rate rewinding (Renda et al., ICLR 2020), which
recovers more than fine-tuning at the parent's last, small rate.

With ``ema`` an exponential moving average of the weights (Polyak averaging, as potentials such
as MACE and NequIP are trained) is what gets validated, selected and returned: Adam moves every
weight of a converged model by about the learning rate per step whatever its gradient, and the
average cancels much of that walk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from chemprune.common.progress import progress_bar
from chemprune.engines.prune.base import Pruner
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.distill import SchNetDistillation
from chemprune.pipeline.evaluate import evaluate_model

# the bar counts per mille of the budget; the steps and the loss go in the postfix
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"

__all__ = ["finetune", "FINETUNE_SCHEDULES"]

FINETUNE_SCHEDULES = ("constant", "cosine")


def finetune(
    model: SchNet,
    data: MoleculeSet,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    minutes: float,
    lr: float = 2e-4,
    aux_lr: float = 1e-2,
    batch_size: int = 32,
    pruner: Pruner | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    select_best: bool = True,
    start: dict[str, float] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    lr_schedule: str = "constant",
    min_lr: float = 1e-6,
    distill: SchNetDistillation | None = None,
    ema: float = 0.0,
) -> dict[str, Any]:
    """Train ``model`` for a time budget, calling ``pruner.regularize`` and ``pruner.step``.

    With ``select_best`` the state with the lowest validation MAE (checked at each epoch end and
    at the end of the budget) is restored at the end; switch it off while an engine is still
    changing the sparsity (an earlier, denser state would otherwise win). Auxiliary parameters of
    the engine get their own Adam optimizer. ``start`` is the validation result of the model as
    passed in, when the caller has it already. ``lr_schedule``: ``constant`` or ``cosine`` (see
    the module docstring); ``distill``: the parent's distillation terms, added to the loss (its
    adapters are trained with the model); ``ema``: decay of the weight average that is validated
    and returned (0: the weights themselves; e.g. 0.999, warmed up as ``min(ema, (1 + t) / (10 +
    t))`` at step ``t``).
    """
    if not minutes >= 0:
        raise ValueError(f"fine-tuning minutes must be >= 0, got {minutes}")
    if lr_schedule not in FINETUNE_SCHEDULES:
        raise ValueError(
            f"unknown fine-tuning schedule {lr_schedule!r}; use one of {FINETUNE_SCHEDULES}"
        )
    if not (lr > 0 and math.isfinite(lr)) or not (0 <= min_lr <= lr):
        raise ValueError(f"need 0 < lr and 0 <= min_lr <= lr, got lr={lr}, min_lr={min_lr}")
    if not 0.0 <= ema < 1.0:
        raise ValueError(f"the weight average's decay must be in [0, 1), got {ema}")
    if distill is not None and distill.student is not model:
        raise ValueError("the distillation terms watch another model than the one fine-tuned")
    params = list(model.parameters()) + (distill.auxiliary_parameters() if distill else [])
    opt = torch.optim.Adam(params, lr=lr)
    aux = pruner.auxiliary_parameters() if pruner is not None else []
    aux_opt = torch.optim.Adam(aux, lr=aux_lr) if aux else None
    best = dict(start) if start is not None else evaluate_model(model, data, val_idx)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start_mae = best["mae"]
    deadline = time.perf_counter() + 60.0 * minutes
    step, epoch = 0, 0
    bar = None
    if progress and minutes > 0:
        # per mille of whichever budget (time or steps) runs out first
        bar = progress_bar(
            total=1000, leave=False, desc="fine-tune", mininterval=1.0, bar_format=BAR_FORMAT
        )
    t0 = time.perf_counter()
    done = minutes == 0
    kd_sum = {"kd_output": 0.0, "kd_features": 0.0}
    average = _WeightAverage(model, ema) if ema > 0 else None

    def progress_fraction() -> float:  # of whichever budget runs out first
        by_time = (time.perf_counter() - t0) / max(60.0 * minutes, 1e-9)
        return by_time if max_steps is None else max(step / max_steps, by_time)

    while not done:
        model.train()
        for b in data.batches(train_idx, batch_size, shuffle=True, seed=seed * 7919 + epoch):
            if lr_schedule == "cosine":
                t = min(max(progress_fraction(), 0.0), 1.0)
                for group in opt.param_groups:
                    group["lr"] = min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
            if distill is None:
                pred = model(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
                kd = None
            else:
                pred, terms = distill(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
                kd = terms["kd"]
                for k in kd_sum:
                    kd_sum[k] += float(terms[k])
            err = pred - b.y
            loss = (err * err).mean()
            if kd is not None:
                loss = loss + kd
            if not torch.isfinite(loss):
                raise FloatingPointError(f"fine-tuning loss became {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            if aux_opt is not None:
                aux_opt.zero_grad(set_to_none=True)
            loss.backward()
            if pruner is not None:
                pruner.regularize(model)
            opt.step()
            if aux_opt is not None:
                aux_opt.step()
            if average is not None:
                average.update(step)
            if pruner is not None:
                pruner.step(model, step)
            step += 1
            if bar is not None:
                bar.update(min(int(1000 * progress_fraction()), bar.total) - bar.n)
                if step % 20 == 0:
                    bar.set_postfix(
                        step=step,
                        loss=f"{loss.item():.4g}",
                        mae=f"{float(err.detach().abs().mean()):.4g}",
                        refresh=False,
                    )
            if time.perf_counter() > deadline or (max_steps is not None and step >= max_steps):
                done = True
                break
        epoch += 1
        if average is not None:
            average.swap()  # the average is what is validated and kept
        val = evaluate_model(model, data, val_idx)
        if not select_best or val["mae"] < best["mae"] or not math.isfinite(best["mae"]):
            best = val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if average is not None:
            average.swap()  # training goes on from the weights themselves
        log(
            f"fine-tune epoch {epoch}: val MAE {val['mae']:.4f} (best {best['mae']:.4f}), {step} steps"
        )
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    out = {
        "steps": step,
        "epochs": epoch,
        "val_mae_start": start_mae,
        "val_mae": best["mae"],
        "seconds": time.perf_counter() - t0,
        "lr": lr,
        "lr_schedule": lr_schedule,
        "lr_last_step": float(opt.param_groups[0]["lr"]),
    }
    if average is not None:
        out["ema"] = ema
    if distill is not None:
        out["distill"] = distill.settings()
        out |= {f"mean_{k}": v / max(step, 1) for k, v in kd_sum.items()}
    return out


class _WeightAverage:
    """An exponential moving average of a model's parameters, swapped in and out in place."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.params = list(model.parameters())
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        for s, p in zip(self.shadow, self.params, strict=True):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)
