"""Train, save, load and evaluate reaction-class classifiers.

Classifier files are plain dicts (weights-only loadable) written atomically::

    {"format": "reaction_nmt.classifier", "format_version": 1, "config": {...ReactionCNN...},
     "state_dict": {...}, "vocab": [...tokens...], "max_len": 256, "metrics": {...},
     "data": {...}, "integrity": {"algorithm": "sha256", "digest": ...},
     "training": {...}}     # resumable state, only in a run's last.pt

:func:`train_classifier` runs Adam on shuffled batches (the order a function of the seed and the
epoch), keeps ``best.pt`` (validation accuracy) and ``last.pt`` (written every ``save_every``
seconds, at every epoch's end and on an interrupt, with the position inside the epoch and the
random state, so ``resume`` continues exactly).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from chemprune.common.atomic import (
    CheckpointError,
    atomic_save,
    check_finite,
    load_weights_file,
    weights_digest,
)
from reaction_nmt.classify.data import ClassifiedReaction, Vocabulary, reaction_tokens
from reaction_nmt.classify.model import ReactionCNN

__all__ = [
    "FORMAT",
    "classifier_file",
    "encode_reactions",
    "evaluate_classifier",
    "load_classifier",
    "predict_logits",
    "train_classifier",
]

FORMAT = "reaction_nmt.classifier"
FORMAT_VERSION = 1
_KIND = {"kind": "reaction classifier"}


def encode_reactions(
    reactions: Sequence[ClassifiedReaction], vocab: Vocabulary, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens [N, max_len] padded with 0, labels [N])``."""
    x = torch.zeros(len(reactions), max_len, dtype=torch.long)
    for i, r in enumerate(reactions):
        ids = vocab.encode(reaction_tokens(r.reactants, r.product), max_len)
        x[i, : len(ids)] = torch.tensor(ids)
    return x, torch.tensor([r.label for r in reactions], dtype=torch.long)


def _digest(ckpt: dict[str, Any]) -> str:
    meta = {"model": ckpt["config"], "vocab": list(ckpt["vocab"]), "max_len": ckpt["max_len"]}
    return weights_digest(ckpt["state_dict"], meta, _KIND)


def classifier_file(
    model: ReactionCNN, vocab: Vocabulary, max_len: int, *, metrics: dict | None = None,
    data: dict | None = None, extra: dict | None = None,
) -> dict[str, Any]:  # fmt: skip
    ckpt: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "vocab": list(vocab.tokens), "max_len": int(max_len), "metrics": dict(metrics or {}),
        "data": dict(data or {}),
    }  # fmt: skip
    if extra:
        ckpt.update(extra)
    ckpt["integrity"] = {"algorithm": "sha256", "digest": _digest(ckpt)}
    return ckpt


def load_classifier(path: os.PathLike | str) -> tuple[ReactionCNN, Vocabulary, dict[str, Any]]:
    """``(model in eval mode, vocabulary, file)``; one-line errors for foreign or bad files."""
    obj = load_weights_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"model file {path} is not a reaction-class classifier "
            "(`reaction-nmt classify train` makes one)"
        )
    if not isinstance(obj.get("format_version"), int) or obj["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"model file {path} has an unknown format version")
    try:
        if _digest(obj) != (obj.get("integrity") or {}).get("digest"):
            raise CheckpointError(
                f"model file {path} is corrupted: its weights do not match the stored checksum"
            )
        model = ReactionCNN.from_config(obj["config"])
        model.load_state_dict(obj["state_dict"])
        check_finite(obj["state_dict"], path)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"model file {path} is corrupted: {err}") from None
    model.eval()
    return model, Vocabulary(tuple(obj["vocab"])), obj


def trim(x: torch.Tensor) -> torch.Tensor:
    """``x`` without the padding columns every row has (a batch is as long as its longest)."""
    return x[:, : max(1, int((x != 0).sum(1).max()))]


@torch.no_grad()
def predict_logits(model: ReactionCNN, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(trim(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
    model.train(was)
    return out


def evaluate_classifier(
    model: ReactionCNN, x: torch.Tensor, y: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    """Accuracy, per-class accuracy (``None`` for a class absent from ``y``), confusion matrix
    (rows: true class, columns: predicted; 1-based class names)."""
    pred = predict_logits(model, x).argmax(1)
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (y.numpy(), pred.numpy()), 1)
    per = {}
    for k in range(num_classes):
        n = conf[k].sum()
        per[str(k + 1)] = None if n == 0 else float(conf[k, k] / n)
    return {"accuracy": float((pred == y).float().mean()), "per_class": per,
            "confusion": conf.tolist(), "n": int(len(y))}  # fmt: skip


def _quiet(_: str) -> None:
    pass


def train_classifier(
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    vocab: Vocabulary,
    run_dir: Path,
    *,
    model: ReactionCNN,
    max_len: int,
    epochs: int = 10,
    minutes: float | None = None,
    lr: float = 1e-3,
    lr_schedule: str = "constant",
    min_lr: float = 0.0,
    batch_size: int = 64,
    seed: int = 0,
    resume: bool = False,
    save_every: float = 120.0,
    data: dict | None = None,
    log: Callable[[str], None] | None = None,
    loss_fn: Callable[[ReactionCNN, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    extra_parameters: Sequence[torch.nn.Parameter] = (),
) -> dict[str, Any]:
    """Train ``model`` (in place); returns the summary with the best validation accuracy.

    ``lr_schedule``: ``constant`` or ``cosine`` (from ``lr`` to ``min_lr`` over ``epochs``; a
    resumed run continues the curve). ``loss_fn(model, tokens, labels)`` replaces the
    cross-entropy (e.g. with distillation terms, whose own parameters go in
    ``extra_parameters``)."""
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if not 0.0 <= min_lr <= lr:
        raise ValueError(f"min_lr must be in [0, lr={lr}], got {min_lr}")
    log = log or _quiet
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    opt = torch.optim.Adam([*model.parameters(), *extra_parameters], lr=lr)
    state = {"epoch": 0, "pos": 0, "best_acc": -1.0, "history": []}
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"--resume: {last} does not exist (nothing to continue)")
        m, _, ck = load_classifier(last)
        model.load_state_dict(m.state_dict())
        opt.load_state_dict(ck["training"]["optimizer"])
        state = ck["training"]["state"]
        torch.set_rng_state(ck["training"]["rng"])
    elif last.exists():
        raise FileExistsError(f"{last} exists: pass --resume to continue, or another --out")
    else:
        torch.manual_seed(seed)
    n = len(train[0])
    per_epoch = max(1, n // batch_size)
    total = epochs * per_epoch

    def set_lr() -> None:
        if lr_schedule == "constant":
            return
        t = min(state["epoch"] * per_epoch + state["pos"], total)
        for group in opt.param_groups:
            group["lr"] = min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / total))

    loss_fn = loss_fn or (lambda m, x, y: F.cross_entropy(m(x), y))

    def save() -> None:
        extra = {"training": {"optimizer": opt.state_dict(), "state": state,
                              "rng": torch.get_rng_state()}}  # fmt: skip
        atomic_save(classifier_file(model, vocab, max_len, data=data, extra=extra), last)

    t0 = last_save = time.perf_counter()
    out_of_time = False
    try:
        while state["epoch"] < epochs and not out_of_time:
            order = torch.from_numpy(np.random.default_rng([seed, state["epoch"]]).permutation(n))
            model.train()
            while state["pos"] < per_epoch:
                if minutes is not None and time.perf_counter() - t0 > 60 * minutes:
                    out_of_time = True
                    break
                idx = order[state["pos"] * batch_size : (state["pos"] + 1) * batch_size]
                loss = loss_fn(model, trim(train[0][idx]), train[1][idx])
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss is {float(loss)} at epoch {state['epoch'] + 1}: "
                        "lower the learning rate"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                set_lr()
                opt.step()
                state["pos"] += 1
                if time.perf_counter() - last_save > save_every:
                    save()
                    last_save = time.perf_counter()
            if out_of_time:
                break
            acc = evaluate_classifier(model, *valid, model.num_classes)["accuracy"]
            state["epoch"] += 1
            state["pos"] = 0
            state["history"].append({"epoch": state["epoch"], "valid_accuracy": acc,
                                     "minutes": (time.perf_counter() - t0) / 60})  # fmt: skip
            mark = ""
            if acc > state["best_acc"]:
                state["best_acc"] = acc
                atomic_save(classifier_file(model, vocab, max_len, data=data,
                                            metrics={"valid_accuracy": acc,
                                                     "epoch": state["epoch"]}), best)  # fmt: skip
                mark = "  *"
            log(f"epoch {state['epoch']:>3}  valid accuracy {acc:.4f}{mark}")
            save()
    finally:
        save()
    return {"best": str(best) if best.exists() else None, "last": str(last),
            "best_valid_accuracy": state["best_acc"], "epochs": state["epoch"],
            "history": state["history"]}  # fmt: skip
