"""Masked retraining with OpenNMT-py's own trainer (through :func:`reaction_nmt.backend.train`).

The working model's effective weights are written as a checkpoint (with the original optimizer
state, so Adam's moments and the learning-rate schedule continue where training stopped);
OpenNMT-py trains it for ``steps`` more steps under
:func:`~reaction_nmt.compress.hooks.masked_training` (masked weights re-zeroed after every
optimizer step, Han et al.'s masked retraining) and :func:`~reaction_nmt.compress.hooks.onmt_hooks`
(shrunk shapes); the result is copied back into the working model. Why OpenNMT-py's trainer and
not a loop of our own: the same batching, label smoothing, loss normalisation, optimizer and
schedule as the run that made the model, and nothing to keep in step with OpenNMT-py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from chemprune.engines.prune.masks import apply_masks, get_masks
from reaction_nmt.compress.checkpoint import export_checkpoint, load_weights, save_atomic
from reaction_nmt.compress.errors import CompressError
from reaction_nmt.compress.gradual import GradualPruning

__all__ = ["Retrainer", "retrain_config"]

# options of the original run that must not carry over into a retraining run
_DROP = {
    "config", "save_config", "data", "src_vocab", "tgt_vocab", "save_model", "train_from",
    "train_steps", "valid_steps", "save_checkpoint_steps", "keep_checkpoint", "log_file",
    "tensorboard", "tensorboard_log_dir", "report_every", "reset_optim", "update_vocab",
    "models", "early_stopping", "n_sample", "dump_samples", "overwrite", "src_vocab_size",
    "tgt_vocab_size", "vocab_size_multiple", "share_vocab", "train_eval_steps",
}  # fmt: skip


def retrain_config(opt, *, data_dir: Path, run_dir: Path, train_from: Path, steps: int) -> dict:
    """OpenNMT-py options continuing ``train_from`` for ``steps`` steps on ``data_dir``."""
    from onmt.bin.train import _get_parser

    defaults = {a.dest: a.default for a in _get_parser()._actions}
    config = {
        k: copy.deepcopy(v)
        for k, v in sorted(vars(opt).items())
        if k in defaults and k not in _DROP and v not in (None, []) and v != defaults[k]
    }
    for k in ("gpu_ranks", "world_size", "gpu"):
        config.pop(k, None)
    run_dir = Path(run_dir).resolve()
    vocab = run_dir / "vocab.txt"
    config.update(
        {
            "data": {
                "corpus_1": {
                    "path_src": str(Path(data_dir).resolve() / "src-train.txt"),
                    "path_tgt": str(Path(data_dir).resolve() / "tgt-train.txt"),
                }
            },
            "src_vocab": str(vocab),
            "share_vocab": True,
            "save_model": str(run_dir / "model"),
            "train_from": str(train_from),
            "train_steps": int(steps),
            "valid_steps": 10**9,
            "save_checkpoint_steps": 10**9,
            "keep_checkpoint": 1,
            "report_every": max(1, min(50, int(steps))),
            "num_workers": 0,
        }
    )
    return config


class Retrainer:
    """Masked retraining rounds for a working model (see the module docstring).

    Args:
        template: the original OpenNMT-py checkpoint dict (options, vocabulary, optimizer).
        data_dir: prepared folder with ``src-train.txt`` / ``tgt-train.txt``.
        work_dir: where the temporary checkpoints and logs go.
        steps: optimizer steps per round.
        max_seconds: wall-clock budget per round (OpenNMT-py saves when it runs out).
        opt: the options of the working model (default: the template's).
        loss_hook: OpenNMT-py loss replacement for every round (``backend.train(loss_hook=)``),
            e.g. :class:`reaction_nmt.distill.WordLevelHook`: retraining distilled from a
            teacher (the uncompressed model) instead of the gold tokens alone.
        gradual: masks tighten during every round (:mod:`~reaction_nmt.compress.gradual`)
            over ``sets`` (threshold set -> group names, e.g. the OLMP search's); the working
            model gets the round's final masks.
    """

    def __init__(
        self,
        *,
        template: dict,
        data_dir: Path,
        work_dir: Path,
        steps: int,
        max_seconds: float | None = None,
        opt=None,
        loss_hook=None,
        gradual: GradualPruning | None = None,
        sets: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if steps < 1:
            raise CompressError(f"retraining steps must be >= 1, got {steps}")
        for f in ("src-train.txt", "tgt-train.txt"):
            if not (Path(data_dir) / f).is_file():
                raise CompressError(f"retraining needs {Path(data_dir) / f}")
        if not template.get("optim"):
            raise CompressError("the checkpoint has no optimizer state to continue training from")
        self.template = template
        self.opt = template["opt"] if opt is None else opt
        self.data_dir = Path(data_dir)
        self.work_dir = Path(work_dir)
        self.steps = int(steps)
        self.max_seconds = max_seconds
        self.loss_hook = loss_hook
        if gradual is not None and not sets:
            raise CompressError("gradual pruning needs the threshold sets of the weights")
        self.gradual = gradual
        self.sets = {s: list(g) for s, g in (sets or {}).items()}
        self.rounds = 0

    def __call__(self, working: nn.Module) -> dict:
        """Retrain ``working`` in place (its masks stay); returns what OpenNMT-py did."""
        from reaction_nmt import backend
        from reaction_nmt.compress.hooks import masked_training, onmt_hooks
        from reaction_nmt.compress.storage import load_model

        run = self.work_dir / f"retrain_{self.rounds}"
        run.mkdir(parents=True, exist_ok=True)
        self.rounds += 1
        ckpt = export_checkpoint(working, self.template, opt=self.opt)
        # OpenNMT-py's saved ``training_step`` is the next step to run (1 + steps done)
        done = max(int(ckpt["optim"].get("training_step", 1)) - 1, 0) if ckpt.get("optim") else 0
        save_atomic(ckpt, run / "start.pt")
        vocab = ckpt["vocab"]["src"]
        (run / "vocab.txt").write_text("".join(f"{tok} 1\n" for tok in vocab))
        config = retrain_config(
            self.opt, data_dir=self.data_dir, run_dir=run, train_from=run / "start.pt",
            steps=done + self.steps,
        )  # fmt: skip
        masks = _parameter_masks(working)
        plan = None
        if self.gradual is not None:
            sets = {s: [f"{g}.weight" for g in gs] for s, gs in self.sets.items()}
            plan = self.gradual.plan(sets, masks, self.steps)
        with onmt_hooks(), masked_training(masks, plan.update if plan else None) as state:
            result = backend.train(config, max_seconds=self.max_seconds, loss_hook=self.loss_hook)
        load_weights(working, load_model(result.checkpoint))
        if plan is not None:
            apply_masks(working, {n: masks[n] for ns in plan.sets.values() for n in ns})
        for p in run.glob("model_step_*.pt"):
            p.unlink()
        (run / "start.pt").unlink()
        info = {"steps": state["steps"], "seconds": result.seconds, "to_step": result.step}
        if plan is not None:
            info["gradual"] = {"sparsity_from": plan.initial, "sparsity_to": 1 - plan.kept(),
                               "target": self.gradual.target, "mask_updates": plan.updates}  # fmt: skip
        loss = getattr(self.loss_hook, "loss", None)
        if loss is not None and hasattr(loss, "summary"):
            info["distill"] = loss.summary()
        return info


def _parameter_masks(working: nn.Module) -> dict:
    """Masks by parameter name, repeated for every name of a shared module."""
    masks = get_masks(working)
    out = dict(masks)
    by_module: dict[int, str] = {}
    for name, module in working.named_modules():
        by_module[id(module)] = name
    for name, module in working.named_modules(remove_duplicate=False):
        first = by_module.get(id(module))
        if first is None or first == name:
            continue
        for key, m in masks.items():
            if key.startswith(first + "."):
                out[name + key[len(first) :]] = m
    return out
