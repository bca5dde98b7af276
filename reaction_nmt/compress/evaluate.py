"""Validation metrics of an in-memory (masked) OpenNMT-py model, for the compression search.

:class:`Evaluator` loads a checkpoint once through :class:`reaction_nmt.backend.Translator`
(the code path of ``reaction-nmt evaluate``) and measures, after copying a working model's
effective weights into the translator's model:

* ``top1``: greedy (or small-beam) decoding, top-1 by canonical exact match
  (:func:`reaction_nmt.scoring.score_predictions`), in percent;
* ``seq``: teacher-forced exact sequence match in percent: the share of reactions whose every
  target token (and the end token) is the argmax given the gold prefix, which is exactly when
  greedy decoding writes the target token for token; one batched forward pass, ~10x cheaper
  than decoding, and a lower bound of greedy ``top1`` (no credit for other spellings of the
  same molecule);
* ``ppl``: minus the teacher-forced token perplexity.

:func:`working_copy` gives the copy that pruning masks (tied embeddings become one shared
module, so a mask on the encoder's embedding reaches the decoder too). Imports OpenNMT-py
through the backend.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from reaction_nmt.compress.checkpoint import effective
from reaction_nmt.compress.errors import CompressError

__all__ = ["METRICS", "Evaluator", "working_copy", "copy_weights", "read_slice"]

METRICS = ("top1", "seq", "ppl")


def read_slice(path: Path, limit: int | None) -> list[str]:
    with open(path) as fh:
        lines = [line.strip() for line in fh if line.strip()]
    return lines[:limit] if limit else lines


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy whose tied embeddings are one module (masks then reach every use)."""
    work = copy.deepcopy(model)
    first: dict[int, nn.Module] = {}
    for name, module in list(work.named_modules(remove_duplicate=False)):
        if not isinstance(module, nn.Embedding):
            continue
        key = id(module.weight)
        if key in first and first[key] is not module:
            parent, _, leaf = name.rpartition(".")
            setattr(work.get_submodule(parent), leaf, first[key])
        first.setdefault(key, module)
    gen = getattr(work, "generator", None)
    if gen is not None and id(getattr(gen, "weight", None)) in first:
        raise CompressError("models with share_decoder_embeddings are not supported")
    return work


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``src``'s effective (masked) parameters into ``dst`` of the same shapes."""
    for name, p in dst.named_parameters(remove_duplicate=False):
        p.copy_(effective(src, name))


class Evaluator:
    """A validation metric for working models (see the module docstring).

    Args:
        model: checkpoint whose architecture the working models share.
        sources, targets: tokenised validation reactions.
        metric: ``top1``, ``seq`` or ``ppl``.
        beam_size: beam of the ``top1`` decoding (1: greedy).
        batch_size: sentences per batch.
        max_length: longest decoded prediction.
    """

    def __init__(
        self,
        model: Path,
        sources: Sequence[str],
        targets: Sequence[str],
        *,
        metric: str = "top1",
        beam_size: int = 1,
        batch_size: int = 64,
        max_length: int = 300,
    ) -> None:
        from reaction_nmt.backend import Translator

        if metric not in METRICS:
            raise CompressError(f"unknown metric {metric!r}; use one of {METRICS}")
        if not sources or len(sources) != len(targets):
            raise CompressError(
                f"need the same nonzero number of sources and targets ({len(sources)}, "
                f"{len(targets)})"
            )
        self.metric = metric
        self.sources, self.targets = list(sources), list(targets)
        self.batch_size = batch_size
        self.translator = Translator(
            Path(model), beam_size=beam_size, n_best=1, batch_size=batch_size,
            max_length=max_length,
        )  # fmt: skip
        engine = self.translator._engine  # the InferenceEnginePY; its translator holds the model
        self.model: nn.Module = engine.translator.model
        self.vocabs = engine.vocabs
        self.calls = 0
        self.seconds = 0.0
        self._batches = None

    # ------------------------------------------------------------------ metrics
    def __call__(self, working: nn.Module | None = None) -> float:
        """The metric (higher is better) of ``working``'s weights (default: the loaded model)."""
        start = time.perf_counter()
        if working is not None:
            copy_weights(working, self.model)
        if self.metric == "top1":
            value = self.top1()
        else:
            seq, ppl = self.teacher_forced()
            value = seq if self.metric == "seq" else -ppl
        self.calls += 1
        self.seconds += time.perf_counter() - start
        return value

    def top1(self) -> float:
        from reaction_nmt.scoring import score_predictions
        from reaction_nmt.tokenize import detokenize

        out = self.translator.translate(self.sources)
        preds = [[detokenize(nbest[0][0])] if nbest else [] for nbest in out]
        result = score_predictions([detokenize(t) for t in self.targets], preds, top_k=(1,))
        return 100.0 * result["top_k"]["1"]

    def _tensors(self):
        if self._batches is None:
            from onmt.constants import DefaultTokens

            src_v, tgt_v = self.vocabs["src"], self.vocabs["tgt"]
            start = self.vocabs.get("decoder_start_token", DefaultTokens.BOS)
            pad_s, pad_t = src_v[DefaultTokens.PAD], tgt_v[DefaultTokens.PAD]
            pairs = [
                (src_v(s.split()), tgt_v([start, *t.split(), DefaultTokens.EOS]))
                for s, t in zip(self.sources, self.targets, strict=True)
            ]
            pairs.sort(key=lambda p: (len(p[0]), len(p[1])))
            self._batches = []
            for i in range(0, len(pairs), self.batch_size):
                chunk = pairs[i : i + self.batch_size]
                ls, lt = max(len(s) for s, _ in chunk), max(len(t) for _, t in chunk)
                src = torch.full((len(chunk), ls, 1), pad_s, dtype=torch.long)
                tgt = torch.full((len(chunk), lt, 1), pad_t, dtype=torch.long)
                for j, (s, t) in enumerate(chunk):
                    src[j, : len(s), 0] = torch.tensor(s)
                    tgt[j, : len(t), 0] = torch.tensor(t)
                lengths = torch.tensor([len(s) for s, _ in chunk])
                self._batches.append((src, tgt, lengths, pad_t))
        return self._batches

    @torch.no_grad()
    def logits(self, model: nn.Module | None = None) -> list[torch.Tensor]:
        """Teacher-forced log-probabilities per batch (``model`` defaults to the loaded one)."""
        model = self.model if model is None else model
        model.eval()
        out = []
        for src, tgt, lengths, _ in self._tensors():
            dec_out, _ = model(src, tgt, lengths)
            out.append(torch.log_softmax(model.generator(dec_out).float(), dim=-1))
        return out

    @torch.no_grad()
    def teacher_forced(self) -> tuple[float, float]:
        """(exact sequence match in %, token perplexity) on the validation slice."""
        correct = tokens = 0
        nll = 0.0
        for logp, (_, tgt, _, pad) in zip(self.logits(), self._tensors(), strict=True):
            gold = tgt[:, 1:, 0]
            mask = gold != pad
            nll -= float(logp.gather(-1, gold.unsqueeze(-1)).squeeze(-1)[mask].sum())
            tokens += int(mask.sum())
            hit = (logp.argmax(-1) == gold) | ~mask
            correct += int(hit.all(dim=1).sum())
        return 100.0 * correct / len(self.sources), float(torch.exp(torch.tensor(nll / tokens)))

    def __repr__(self) -> str:
        return f"Evaluator(metric={self.metric!r}, reactions={len(self.sources)})"
