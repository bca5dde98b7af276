"""What ``chemprune demo`` shows: the released QM9 models of one target side by side on this
machine — predictions for named molecules next to QM9's own values, test error on the molecules
each model never saw, and measured speed. Pure computation; the CLI prints it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["NAMED_MOLECULES", "ShowcaseSettings", "qm9_matches", "showcase"]

NAMED_MOLECULES: tuple[tuple[str, str], ...] = (
    ("ethanol", "CCO"),
    ("acetone", "CC(C)=O"),
    ("benzene", "c1ccccc1"),
    ("pyridine", "c1ccncc1"),
    ("acetonitrile", "CC#N"),
    ("urea", "NC(N)=O"),
)


@dataclass
class ShowcaseSettings:
    """Which models, which molecules, how the speed is measured."""

    models: Sequence[Path]
    molecules: Sequence[tuple[str, str]] = NAMED_MOLECULES
    threads: int = 1  #: speed is timed on this many threads (1: the fastest per core here)
    time_molecules_b64: int = 1024
    time_molecules_b1: int = 128
    repeats: int = 3


def qm9_matches(data, smiles: Sequence[str]) -> list[int | None]:
    """Index of each SMILES's molecule in QM9 (by RDKit canonical SMILES, the hydrogens
    counted), or ``None`` for a molecule QM9 does not hold."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    counts = np.diff(np.asarray(data.ptr))
    out: list[int | None] = []
    for smi in smiles:
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            raise ValueError(f"invalid SMILES {smi!r}")
        atoms = Chem.AddHs(mol).GetNumAtoms()
        want = Chem.MolToSmiles(mol)
        found = None
        for i in np.flatnonzero(counts == atoms):
            cand = Chem.MolFromSmiles(str(data.smiles[i]))
            if cand is not None and Chem.MolToSmiles(cand) == want:
                found = int(i)
                break
        out.append(found)
    return out


def showcase(settings: ShowcaseSettings, data) -> dict[str, Any]:
    """Load every model in ``settings.models`` (all of one target and one split, the first the
    reference), predict the named molecules from SMILES (RDKit geometry), score each on its
    checkpoint's test molecules and time it at batch 64 and 1.

    Returns ``{"target", "unit", "molecules": [...], "models": [...]}``: per molecule its name,
    SMILES, QM9 value (or ``None``) and each model's prediction; per model its file, widths,
    parameters, table size, test MAE (molecules), molecules/s at batch 64 and 1 and the speedups
    over the first model.
    """
    from chemprune.molecules.checkpoint import load_model
    from chemprune.molecules.chem.structures import smiles_to_structure, structures_to_batch
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.predict import throughput
    from chemprune.pipeline.compress_schnet import split_from_checkpoint
    from chemprune.pipeline.evaluate import evaluate_model

    if not settings.models:
        raise ValueError("no models to show")
    loaded = [load_model(p) for p in settings.models]
    target = loaded[0][1]["target"]
    for p, (_, ckpt) in zip(settings.models, loaded, strict=True):
        if ckpt["target"]["name"] != target["name"]:
            raise ValueError(f"{p} predicts {ckpt['target']['name']}, not {target['name']}")
    y = data.target_values(target["name"])
    mset = MoleculeSet(data.z, data.pos, data.ptr, y)
    split = split_from_checkpoint(loaded[0][1], len(mset))
    for p, (_, ckpt) in zip(settings.models[1:], loaded[1:], strict=True):
        other = split_from_checkpoint(ckpt, len(mset))
        if not np.array_equal(other.test, split.test):
            raise ValueError(f"{p} was tested on other molecules than {settings.models[0]}")

    names = [n for n, _ in settings.molecules]
    smiles = [s for _, s in settings.molecules]
    structs = [smiles_to_structure(s) for s in smiles]
    z, pos, batch = structures_to_batch(structs)
    where = qm9_matches(data, smiles)
    molecules = [
        {"name": n, "smiles": s, "qm9": None if i is None else float(y[i]), "predictions": []}
        for n, s, i in zip(names, smiles, where, strict=True)
    ]
    rows = []
    threads = torch.get_num_threads()
    test = split.test
    for path, (model, _) in zip(settings.models, loaded, strict=True):
        model.eval()
        with torch.inference_mode():
            pred = model(z, pos, batch, num_molecules=len(structs)).tolist()
        for m, v in zip(molecules, pred, strict=True):
            m["predictions"].append(v)
        score = evaluate_model(model, mset, test)
        torch.set_num_threads(settings.threads)
        try:
            b64 = throughput(model, mset, test[: settings.time_molecules_b64], batch_size=64,
                             repeats=settings.repeats)  # fmt: skip
            b1 = throughput(model, mset, test[: settings.time_molecules_b1], batch_size=1,
                            repeats=settings.repeats)  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        tables = sum(b.numel() * b.element_size() for n, b in model.named_buffers()
                     if n.endswith("coeffs"))  # fmt: skip
        rows.append({
            "model": str(path), "name": Path(path).stem,
            "kinds": sorted(set(model.block_kinds)), "filters": list(model.filter_channels),
            "hidden": model.hidden_channels,
            "params": sum(p.numel() for p in model.parameters()), "table_bytes": tables,
            "test_mae": score["mae"], "test_molecules": score["n"],
            "mol_per_s_b64": b64, "mol_per_s_b1": b1,
        })  # fmt: skip
    for r in rows:
        r["speedup_b64"] = r["mol_per_s_b64"] / rows[0]["mol_per_s_b64"]
        r["speedup_b1"] = r["mol_per_s_b1"] / rows[0]["mol_per_s_b1"]
        r["mae_change"] = r["test_mae"] / rows[0]["test_mae"] - 1
    return {
        "target": target["name"], "unit": target["unit"], "threads": settings.threads,
        "molecules": molecules, "models": rows,
    }  # fmt: skip
