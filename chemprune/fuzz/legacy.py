"""The ``legacy_model`` fuzz surface: mutated schnetpack-0.x-style model files (legacy, non-zip
``torch.save`` pickles of whole modules) read by the allow-listed unpickler
(:func:`chemprune.molecules.interop.legacy_pickle.load_legacy_torch_file`) and the schnetpack importer.

A case is ``ok`` when the file loads (its modules as inert records) and the importer then either
maps it or refuses it with one line; ``refused`` for a one-line :class:`CheckpointError`; a code
path that runs anything from the file, an exception of another type, a hang or a changed file are
``wrong``, ``crash``, ``hang`` and ``damaged``. A legacy file carries no digest, so a flipped weight
that still loads is not detectable and counts as ``ok``."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from chemprune.fuzz.oracle import Outcome, judge

__all__ = ["legacy_model_reference", "legacy_model_case"]


def legacy_model_reference() -> tuple[bytes, dict]:
    """A small legacy ``torch.save`` of whole modules, as schnetpack 0.x wrote its
    ``best_model`` (no reference weights: a legacy file has no digest to judge them by)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Softplus(), nn.Linear(4, 1))
    buf = io.BytesIO()
    torch.save({"model": model, "cutoff": 5.0, "name": "fuzz"}, buf,
               _use_new_zipfile_serialization=False)  # fmt: skip
    return buf.getvalue(), {}


def legacy_model_case(content: bytes, reference: dict, *, limit: float = 20.0) -> Outcome:
    """Read ``content`` as a legacy model file, then import it as a schnetpack model."""
    from chemprune.common.atomic import CheckpointError
    from chemprune.molecules.interop.legacy_pickle import load_legacy_torch_file
    from chemprune.molecules.interop.schnetpack_legacy import read_schnetpack_legacy

    del reference  # no digest: nothing to compare the weights with
    with tempfile.TemporaryDirectory(prefix="fuzz_legacy_") as tmp:
        path = Path(tmp) / "best_model"
        path.write_bytes(content)
        before = set(Path(tmp).iterdir())

        def run() -> Outcome:
            load_legacy_torch_file(path)
            try:
                read_schnetpack_legacy(path)
            except CheckpointError as err:  # not a schnetpack model: one line
                if "\n" in str(err):
                    return Outcome("crash", f"a multi-line refusal: {str(err)[:200]!r}")
            return Outcome("ok")

        out = judge(run, (CheckpointError, FileNotFoundError), limit)
        if set(Path(tmp).iterdir()) != before:
            return Outcome("wrong", "reading the file created files: something in it ran")
        if path.read_bytes() != content:
            return Outcome("damaged", "the model file changed")
    return out
