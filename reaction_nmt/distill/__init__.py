"""Knowledge distillation of a trained reaction model (e.g. ``mt``) into a smaller preset.

Word level (Hinton et al. 2015; Kim & Rush 2016, "word-level KD"): the student trains with
OpenNMT-py's own trainer, whose training loss is replaced for the run (through
``backend.train(loss_hook=)``) by :class:`WordDistillLoss`: on every batch the frozen teacher
runs teacher-forced on the same source and target tokens, and per target token ::

    loss = (1 - alpha) * CE(gold) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

summed over the non-padding tokens (OpenNMT-py then divides by the token count). Both models
must index the same vocabulary: the student's run writes the teacher's vocabulary (same tokens,
same order) and the hook checks it. OpenNMT-py's log reports the gold cross-entropy (its
perplexity stays comparable with plain training); the distillation term's running mean goes
into the run's ``reaction_nmt.json``.

Sequence level (Kim & Rush 2016): the teacher translates the training sources (beam search,
best hypothesis) into a new prepared data folder whose targets are its predictions (or gold
and teacher pairs together, ``targets="mixed"``); the student then trains on it normally.

Files: :mod:`.word` (the loss hook; the only place that imports ``onmt``, in
:func:`~reaction_nmt.distill.word.load_teacher`, to rebuild the teacher as a
``torch.nn.Module``), :mod:`.sequence` (the teacher-translated data), :mod:`.common`; training
and translation go through :mod:`reaction_nmt.backend`.

References:
    G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network", 2015.
    Y. Kim, A. M. Rush, "Sequence-level knowledge distillation", EMNLP 2016.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chemprune.common.atomic import atomic_write_text
from chemprune.engines.distill import TeacherCache, check_temperature, check_weight
from reaction_nmt import backend
from reaction_nmt.distill.common import DistillError, _checked, resolve_checkpoint
from reaction_nmt.distill.sequence import sequence_level_data
from reaction_nmt.distill.word import (
    WordDistillLoss,
    WordLevelHook,
    load_teacher,
    write_teacher_vocab,
)
from reaction_nmt.prepare import PreparedData
from reaction_nmt.presets import build_config

__all__ = [
    "MODES",
    "DistillError",
    "DistillResult",
    "WordDistillLoss",
    "WordLevelHook",
    "distill",
    "load_teacher",
    "resolve_checkpoint",
    "sequence_level_data",
    "write_teacher_vocab",
]

MODES = ("word", "sequence")
RUN_INFO = "reaction_nmt.json"  # the run description ``reaction-nmt train`` writes too
_VOCAB_OPTIONS = ("src_vocab", "tgt_vocab", "share_vocab", "vocab_size_multiple", "src_vocab_size")


@dataclass(frozen=True)
class DistillResult:
    checkpoint: Path
    step: int
    seconds: float
    stopped_by_budget: bool
    mode: str
    data: Path
    word_level: dict | None = None


def distill(
    *,
    teacher: Path,
    data: Path,
    out: Path,
    preset: str = "compact",
    mode: str = "word",
    temperature: float = 2.0,
    alpha: float = 0.5,
    max_seconds: float | None = None,
    overrides: dict | None = None,
    beam_size: int = 5,
    targets: str = "teacher",
    max_length: int = 300,
    cache_teacher: bool = False,
    cache_top_k: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DistillResult:
    """Train ``preset`` in ``out`` from the teacher checkpoint (or run folder) ``teacher``.

    ``mode="word"``: teacher soft targets through OpenNMT-py's trainer (``temperature``,
    ``alpha``; ``cache_teacher`` keeps the teacher's logits of each example in memory, all or
    the ``cache_top_k`` largest per token, so that later epochs skip the teacher); ``"sequence"``: the teacher's beam outputs (``beam_size``, ``targets``) become
    the training targets (written to ``out/data_teacher``), then plain training. The student
    uses the teacher's vocabulary in both modes. ``max_seconds`` is the training budget (the
    teacher's translation in sequence mode is not counted)."""
    if mode not in MODES:
        raise DistillError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    temperature = _checked(check_temperature, temperature)
    alpha = _checked(check_weight, alpha)
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & set(_VOCAB_OPTIONS))
    if clash:
        raise DistillError(
            f"distillation uses the teacher's vocabulary; do not override {', '.join(clash)}"
        )
    teacher = resolve_checkpoint(teacher)
    vocab = backend.load_checkpoint(teacher)["vocab"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_mode = PreparedData(Path(data)).manifest.get("mode", "mixed")  # error if unprepared
    hook = None
    if mode == "word":
        cache = TeacherCache(top_k=cache_top_k) if cache_teacher else None
        hook = WordLevelHook(teacher, temperature=temperature, alpha=alpha, cache=cache)
    train_data = Path(data)
    if mode == "sequence":
        train_data = sequence_level_data(
            teacher, data, out / "data_teacher", beam_size=beam_size, targets=targets,
            max_length=max_length, progress=progress,
        )  # fmt: skip
    write_teacher_vocab(vocab, out / "vocab.txt")
    config = build_config(preset=preset, data_dir=train_data, run_dir=out, overrides=overrides)
    settings = {"mode": mode, "teacher": str(teacher.resolve())}
    if mode == "word":
        settings.update(temperature=temperature, alpha=alpha, cache_teacher=cache_teacher)
        if cache_teacher:
            settings["cache_top_k"] = cache_top_k
    else:
        settings.update(beam_size=beam_size, targets=targets, data=str(train_data.resolve()))
    info = {
        "preset": preset,
        "overrides": overrides,
        "data": str(Path(data).resolve()),
        "mode": data_mode,
        "backend": f"OpenNMT-py {backend.onmt_version()}",
        "distillation": settings,
    }
    atomic_write_text(out / RUN_INFO, json.dumps(info, indent=2) + "\n")
    result = backend.train(config, max_seconds=max_seconds, loss_hook=hook)
    word = hook.loss.summary() if hook is not None and hook.loss is not None else None
    if word is not None:
        info["distillation"]["training"] = word
        atomic_write_text(out / RUN_INFO, json.dumps(info, indent=2) + "\n")
    return DistillResult(
        checkpoint=result.checkpoint,
        step=result.step,
        seconds=result.seconds,
        stopped_by_budget=result.stopped_by_budget,
        mode=mode,
        data=train_data,
        word_level=word,
    )
