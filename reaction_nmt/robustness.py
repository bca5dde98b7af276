"""A prepared split with spectators added to every source: the robustness test set.

:func:`write_spectator_split` reads ``src-{split}.txt``/``tgt-{split}.txt`` of a prepared folder,
adds a spectator set drawn from a pool to every source, written canonically (what
``reaction-nmt predict`` makes of a reaction typed with its reagents), and writes a new prepared
folder holding that one split, so ``reaction-nmt evaluate --data OUT --split test`` scores a
model on it unchanged. Seeded: the same pool, data and seed give the same file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from reaction_nmt.formats import read_lines
from reaction_nmt.prepare import MANIFEST, PreparedData, PrepareError, sha256, with_spectators
from reaction_nmt.spectators import SpectatorPool
from reaction_nmt.tokenize import detokenize, tokenize

__all__ = ["write_spectator_split"]


def write_spectator_split(
    data: Path | str,
    out: Path | str,
    *,
    pool: SpectatorPool,
    split: str = "test",
    seed: int = 0,
) -> dict:
    """Write ``out/src-{split}.txt`` (sources with spectators), ``out/tgt-{split}.txt`` (the
    targets, unchanged) and ``out/manifest.json``; return the manifest.

    Raises :class:`PrepareError` when ``out`` already holds a corpus or the split is missing.
    """
    prepared = PreparedData(Path(data))
    src_path, tgt_path = prepared.src(split), prepared.tgt(split)
    sources = [detokenize(line) for line in read_lines(src_path) if line.strip()]
    targets = [line.strip() for line in read_lines(tgt_path) if line.strip()]
    if len(sources) != len(targets):
        raise PrepareError(
            f"{src_path} has {len(sources)} sources but {tgt_path} has {len(targets)} targets"
        )
    out = Path(out)
    if (out / MANIFEST).exists() or (out / f"src-{split}.txt").exists():
        raise PrepareError(f"--out {out} already holds a corpus: choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"spectators-{seed}-{split}")
    counts = []
    new_src, new_tgt = out / f"src-{split}.txt", out / f"tgt-{split}.txt"
    try:
        with open(new_src, "w") as fs, open(new_tgt, "w") as ft:
            for source, target in zip(sources, targets, strict=True):
                (spectated,) = with_spectators(source, detokenize(target), pool, 1, rng=rng)
                counts.append(spectated.count(".") - source.count("."))
                fs.write(" ".join(tokenize(spectated)) + "\n")
                ft.write(target + "\n")
    except BaseException:
        new_src.unlink(missing_ok=True)
        new_tgt.unlink(missing_ok=True)
        raise
    manifest = {
        "derived_from": {
            "data": str(prepared.folder),
            "split": split,
            "src_sha256": sha256(src_path),
            "tgt_sha256": sha256(tgt_path),
        },
        "spectators": {"seed": seed, "pool": pool.summary()},
        "mode": prepared.manifest.get("mode", "mixed"),
        "splits": {
            split: {
                "written": len(sources),
                "spectators_added_mean": sum(counts) / len(counts) if counts else 0.0,
            }
        },
        "files": {p.name: {"sha256": sha256(p), "lines": len(sources)} for p in (new_src, new_tgt)},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
