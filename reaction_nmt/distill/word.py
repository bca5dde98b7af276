"""Word-level distillation: a loss module swapped into OpenNMT-py's trainer for one run.

This is the only distillation module that imports ``onmt`` (in :func:`load_teacher`, to
rebuild the teacher as a ``torch.nn.Module``); training goes through
``reaction_nmt.backend.train(loss_hook=)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from chemprune.common.atomic import atomic_write_text
from chemprune.engines.distill import TeacherCache, check_temperature, check_weight
from chemprune.engines.distill.soft_target import SoftTargetLoss
from reaction_nmt import backend
from reaction_nmt.distill.common import DistillError, _checked

__all__ = ["WordDistillLoss", "WordLevelHook", "load_teacher", "write_teacher_vocab"]


def load_teacher(path: Path) -> tuple[nn.Module, dict]:
    """The OpenNMT-py model of a checkpoint (generator included) as a frozen module in eval
    mode, and the checkpoint's vocabulary dictionary. Loaded with ``weights_only=True``."""
    ckpt = backend.load_checkpoint(path)
    backend._setup()
    from onmt.inputters.inputter import dict_to_vocabs
    from onmt.model_builder import build_base_model
    from onmt.utils.parse import ArgumentParser

    model_opt = ArgumentParser.ckpt_model_opts(ckpt["opt"])
    ArgumentParser.update_model_opts(model_opt)
    ArgumentParser.validate_model_opts(model_opt)
    model_opt.update_vocab = False
    if getattr(model_opt, "copy_attn", False):
        raise DistillError(
            f"teacher {path} uses copy attention, which distillation does not support"
        )
    model = build_base_model(model_opt, dict_to_vocabs(ckpt["vocab"]))
    model.load_state_dict(ckpt, precision=torch.float32, device=torch.device("cpu"), strict=True)
    model.eval()
    for module in model.modules():
        if hasattr(module, "dropout_p"):
            module.dropout_p = 0.0
    for p in model.parameters():
        p.requires_grad_(False)
    return model, ckpt["vocab"]


def write_teacher_vocab(vocab: dict, out: Path) -> int:
    """The teacher's shared vocabulary as an OpenNMT-py vocabulary file (``token count``
    lines, specials included, in the teacher's order), so that the student indexes tokens as
    the teacher does. Returns the number of tokens."""
    if vocab["src"] != vocab["tgt"]:
        raise DistillError(
            "the teacher has separate source and target vocabularies (not supported)"
        )
    tokens = list(vocab["tgt"])
    n = len(tokens)
    atomic_write_text(out, "".join(f"{tok} {n - i}\n" for i, tok in enumerate(tokens)))
    return n


class WordDistillLoss(nn.Module):
    """Replaces OpenNMT-py's training ``LossCompute`` (``base``) for one run.

    Called by OpenNMT-py's trainer as ``loss(batch, output, attns, trunc_start=, trunc_size=)``
    and returns ``(loss, stats)`` like ``base``; ``stats`` carry the gold cross-entropy.
    ``totals`` accumulates the summed ``ce``, ``kd`` and ``tokens``; with ``record=True``,
    ``last`` holds the last batch's tensors and ``history`` every batch's terms (for checks).
    With a ``cache``, the teacher runs only on batches holding an example it has not seen
    (keyed by source and target token ids); later epochs read its logits from the cache.
    """

    def __init__(
        self,
        base: nn.Module,
        teacher: nn.Module,
        *,
        temperature: float,
        alpha: float,
        cache: TeacherCache | None = None,
        record: bool = False,
    ) -> None:
        super().__init__()
        self.base = base
        self.teacher = teacher
        self.cache = cache
        self.teacher_calls = 0
        self.alpha = check_weight(alpha)
        self.kd = SoftTargetLoss(temperature=temperature, alpha=1.0, reduction="sum")
        self.record = record
        self.calls = 0
        self.totals = {"ce": 0.0, "kd": 0.0, "tokens": 0}
        self.last: dict | None = None
        self.history: list[dict] = []

    @property
    def padding_idx(self) -> int:
        return self.base.padding_idx

    def ignore_prompt(self, batch):
        return self.base.ignore_prompt(batch)

    def forward(self, batch, output, attns, trunc_start=0, trunc_size=None):
        base = self.base
        if trunc_start != 0:
            raise DistillError("word-level distillation does not support truncated decoding")
        if trunc_size is None:
            trunc_size = batch["tgt"].size(1)
        lo, hi = base.tgt_shift_index, trunc_size
        target = batch["tgt"][:, lo:hi, :]
        out = output[:, :hi, :].contiguous()
        flat_tgt = target[:, :, 0].contiguous().view(-1)
        scores = base.generator(base._bottle(out))
        ce = base.criterion(scores.to(torch.float32), flat_tgt)
        mask = flat_tgt.ne(base.padding_idx)
        with torch.no_grad():
            t_scores = self._teacher_scores(batch, hi, mask.view(target.shape[:2]), scores.size(-1))
        kd = self.kd(scores, t_scores, mask=mask)
        loss = (1.0 - self.alpha) * ce + self.alpha * kd
        self.calls += 1
        self.totals["ce"] += float(ce.detach())
        self.totals["kd"] += float(kd.detach())
        self.totals["tokens"] += int(mask.sum())
        if self.record:
            self.history.append({"ce": float(ce.detach()), "kd": float(kd.detach())})
            self.last = {
                "src": batch["src"].detach().clone(),
                "tgt": batch["tgt"].detach().clone(),
                "srclen": batch["srclen"].detach().clone(),
                "scores": scores.detach().clone(),
                "teacher_scores": t_scores.clone(),
                "target": flat_tgt.clone(),
                "ce": float(ce.detach()),
                "kd": float(kd.detach()),
                "loss": float(loss.detach()),
            }
        stats = base._stats(len(batch["srclen"]), float(ce.detach()), scores, flat_tgt)
        return loss, stats

    def _run_teacher(self, batch, hi: int) -> Tensor:
        self.teacher_calls += 1
        t_out, _ = self.teacher(batch["src"], batch["tgt"], batch["srclen"], bptt=False)
        t_out = t_out[:, :hi, :].contiguous()
        return self.teacher.generator(t_out.view(-1, t_out.size(-1))).float()

    def _teacher_scores(self, batch, hi: int, real: Tensor, classes: int) -> Tensor:
        """Teacher logits ``(batch * positions, classes)``: from the cache for examples seen
        before, else from a teacher forward pass on the whole batch (then cached)."""
        if self.cache is None:
            return self._run_teacher(batch, hi)
        n_rows = real.sum(1).tolist()  # target positions of each example (padding is last)
        src, tgt = batch["src"][:, :, 0].cpu(), batch["tgt"][:, :, 0].cpu()
        keys = [
            src[b, : int(batch["srclen"][b])].numpy().tobytes()
            + b"|"
            + tgt[b, : n_rows[b] + 1].numpy().tobytes()
            for b in range(len(n_rows))
        ]
        found = [self.cache.dense(k, classes) for k in keys]
        if any(f is None for f in found):
            live = self._run_teacher(batch, hi).view(len(keys), -1, classes)
            for b, k in enumerate(keys):
                if found[b] is None:
                    stored = self.cache.put(k, live[b, : n_rows[b]])
                    # the cached form, so that a batch scores the same in every epoch
                    found[b] = (
                        self.cache.dense(k, classes, count=False)
                        if stored
                        else live[b, : n_rows[b]]
                    )
        out = torch.zeros(len(keys), real.shape[1], classes)
        for b, f in enumerate(found):
            out[b, : n_rows[b]] = f
        return out.view(-1, classes).to(real.device)

    def summary(self) -> dict:
        n = max(self.totals["tokens"], 1)
        out = {
            "batches": self.calls,
            "teacher_forward_passes": self.teacher_calls,
            "tokens": self.totals["tokens"],
            "ce_per_token": self.totals["ce"] / n,
            "kd_per_token": self.totals["kd"] / n,
        }
        if self.cache is not None:
            out["cache"] = self.cache.stats()
        return out


class WordLevelHook:
    """``backend.train(loss_hook=)`` callable: swaps in a :class:`WordDistillLoss` with the
    teacher at ``teacher``, after checking that the student's vocabulary is the teacher's."""

    def __init__(
        self,
        teacher: Path,
        *,
        temperature: float = 2.0,
        alpha: float = 0.5,
        cache: TeacherCache | None = None,
        record: bool = False,
    ) -> None:
        self.teacher_path = Path(teacher)
        self.cache = cache
        self.temperature = _checked(check_temperature, temperature)
        self.alpha = _checked(check_weight, alpha)
        self.record = record
        self.teacher, self.vocab = load_teacher(self.teacher_path)
        self.loss: WordDistillLoss | None = None

    def __call__(self, compute: nn.Module, *, opt, model: nn.Module, vocab) -> WordDistillLoss:
        student_tokens = list(vocab.ids_to_tokens)
        if student_tokens != list(self.vocab["tgt"]):
            raise DistillError(
                f"the student's vocabulary ({len(student_tokens)} tokens) is not the teacher's "
                f"({len(self.vocab['tgt'])} tokens, {self.teacher_path}): word-level "
                "distillation needs the same tokens in the same order (train the student with "
                "the teacher's vocab.txt)"
            )
        unsupported = [
            what
            for what, on in (
                ("copy attention", getattr(compute, "copy_attn", False)),
                ("coverage loss", getattr(compute, "lambda_coverage", 0.0) != 0.0),
                ("alignment loss", getattr(compute, "lambda_align", 0.0) != 0.0),
                ("LM prior", getattr(compute, "lm_prior_model", None) is not None),
                ("LM prior", getattr(compute, "lm_generator", None) is not None),
                ("sparsemax", not isinstance(compute.criterion, nn.CrossEntropyLoss)),
                ("truncated decoding", getattr(opt, "truncated_decoder", 0) > 0),
            )
            if on
        ]
        if unsupported:
            raise DistillError(f"word-level distillation does not support {', '.join(unsupported)}")
        device = next(model.parameters()).device
        self.loss = WordDistillLoss(
            compute,
            self.teacher.to(device),
            temperature=self.temperature,
            alpha=self.alpha,
            cache=self.cache,
            record=self.record,
        )
        return self.loss
