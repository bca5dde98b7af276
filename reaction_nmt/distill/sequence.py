"""Sequence-level distillation data: the teacher's beam outputs as training targets."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from chemprune.common.atomic import atomic_write_text
from reaction_nmt import backend
from reaction_nmt.distill.common import DistillError, resolve_checkpoint
from reaction_nmt.prepare import MANIFEST, PreparedData, sha256

__all__ = ["sequence_level_data"]


def sequence_level_data(
    teacher: Path,
    data: Path,
    out: Path,
    *,
    beam_size: int = 5,
    targets: str = "teacher",
    batch_size: int = 64,
    max_length: int = 300,
    chunk: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """A prepared data folder whose training targets are the teacher's best beam hypothesis.

    ``targets="teacher"`` replaces the gold targets; ``"mixed"`` keeps every gold pair and adds
    the teacher's pair where it differs. Empty predictions fall back to the gold target. The
    validation and test splits are copied unchanged; ``manifest.json`` records how the folder
    was made."""
    if targets not in ("teacher", "mixed"):
        raise DistillError(f"targets must be 'teacher' or 'mixed', got {targets!r}")
    teacher = resolve_checkpoint(teacher)
    prepared = PreparedData(Path(data))
    manifest = prepared.manifest
    sources = prepared.src("train").read_text().splitlines()
    gold = prepared.tgt("train").read_text().splitlines()
    if len(sources) != len(gold):
        raise DistillError(f"{data}: src-train and tgt-train have different line counts")
    translator = backend.Translator(
        teacher, beam_size=beam_size, n_best=1, batch_size=batch_size, max_length=max_length
    )
    start = time.perf_counter()
    preds: list[str] = []
    for i in range(0, len(sources), chunk):
        preds += [nbest[0][0].strip() for nbest in translator.translate(sources[i : i + chunk])]
        if progress is not None:
            progress(len(preds), len(sources))
    seconds = time.perf_counter() - start
    pairs: list[tuple[str, str]] = []
    counts = {"empty_prediction": 0, "same_as_gold": 0, "teacher_pairs": 0, "gold_pairs": 0}
    for src, ref, pred in zip(sources, gold, preds, strict=True):
        if not pred:
            counts["empty_prediction"] += 1
        counts["same_as_gold"] += pred == ref
        if targets == "mixed":
            pairs.append((src, ref))
            counts["gold_pairs"] += 1
            if pred and pred != ref:
                pairs.append((src, pred))
                counts["teacher_pairs"] += 1
        else:
            pairs.append((src, pred or ref))
            counts["teacher_pairs" if pred else "gold_pairs"] += 1
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "src-train.txt", "".join(s + "\n" for s, _ in pairs))
    atomic_write_text(out / "tgt-train.txt", "".join(t + "\n" for _, t in pairs))
    for split in ("valid", "test"):
        for side in ("src", "tgt"):
            path = prepared.folder / f"{side}-{split}.txt"
            if path.is_file():
                shutil.copyfile(path, out / f"{side}-{split}.txt.tmp")
                os.replace(out / f"{side}-{split}.txt.tmp", out / path.name)
    new = {k: v for k, v in manifest.items() if k != "files"}
    new["files"] = {
        f.name: {"sha256": sha256(f), "lines": sum(1 for _ in open(f))}
        for f in sorted(out.glob("*-*.txt"))
    }
    new["sequence_distillation"] = {
        "teacher": str(teacher.resolve()),
        "source_data": str(prepared.folder.resolve()),
        "targets": targets,
        "beam_size": beam_size,
        "max_length": max_length,
        "train_sources": len(sources),
        "train_pairs": len(pairs),
        "translation_seconds": seconds,
        **counts,
    }
    atomic_write_text(out / MANIFEST, json.dumps(new, indent=2) + "\n")
    return out
