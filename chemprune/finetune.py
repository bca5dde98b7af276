"""Fine-tuning a (masked or gated) SchNet with pruning-engine hooks in the loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from chemprune.data.batching import MoleculeSet
from chemprune.evaluate import evaluate_model
from chemprune.models.schnet import SchNet
from chemprune.prune.base import Pruner

__all__ = ["finetune"]


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
) -> dict[str, Any]:
    """Train ``model`` for a time budget, calling ``pruner.regularize`` and ``pruner.step``.

    With ``select_best`` the state with the lowest validation MAE (checked at each epoch end and
    at the end of the budget) is restored at the end; switch it off while an engine is still
    changing the sparsity (an earlier, denser state would otherwise win). Auxiliary parameters of
    the engine get their own Adam optimizer. ``start`` is the validation result of the model as
    passed in, when the caller has it already.
    """
    if minutes < 0:
        raise ValueError(f"fine-tuning minutes must be >= 0, got {minutes}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    aux = pruner.auxiliary_parameters() if pruner is not None else []
    aux_opt = torch.optim.Adam(aux, lr=aux_lr) if aux else None
    best = dict(start) if start is not None else evaluate_model(model, data, val_idx)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start_mae = best["mae"]
    deadline = time.perf_counter() + 60.0 * minutes
    step, epoch = 0, 0
    bar = None
    if progress and minutes > 0:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=int(60 * minutes), unit="s", leave=False, desc="fine-tune", mininterval=1.0
        )
    t0 = time.perf_counter()
    done = minutes == 0
    while not done:
        model.train()
        for b in data.batches(train_idx, batch_size, shuffle=True, seed=seed * 7919 + epoch):
            err = model(b.z, b.pos, b.batch, num_molecules=b.num_molecules) - b.y
            loss = (err * err).mean()
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
            if pruner is not None:
                pruner.step(model, step)
            step += 1
            if bar is not None:
                bar.n = min(int(time.perf_counter() - t0), bar.total)
                if step % 20 == 0:
                    bar.set_postfix(
                        loss=f"{loss.item():.4g}",
                        mae=f"{float(err.detach().abs().mean()):.4g}",
                        refresh=False,
                    )
            if time.perf_counter() > deadline or (max_steps is not None and step >= max_steps):
                done = True
                break
        epoch += 1
        val = evaluate_model(model, data, val_idx)
        if not select_best or val["mae"] < best["mae"] or not math.isfinite(best["mae"]):
            best = val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(
            f"fine-tune epoch {epoch}: val MAE {val['mae']:.4f} (best {best['mae']:.4f}), {step} steps"
        )
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    return {
        "steps": step,
        "epochs": epoch,
        "val_mae_start": start_mae,
        "val_mae": best["mae"],
        "seconds": time.perf_counter() - t0,
    }
