"""``chemprune predict``: property predictions from SMILES or structure files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """Predict the model's target for molecules given as SMILES (3D structure by RDKit
ETKDG embedding and MMFF relaxation) or structure files (XYZ or anything ASE reads). A molecule
that cannot be used (invalid SMILES, failed embedding, malformed file, element outside H, C, N, O,
F) gets a one-line error on stderr; the others are still predicted, and the exit code is 1."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict from SMILES or XYZ/ASE files", description=DESCRIPTION
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint (.pt)")
    p.add_argument(
        "--smiles",
        action="append",
        default=[],
        metavar="SMILES",
        help="a SMILES string (repeatable)",
    )
    p.add_argument(
        "--smiles-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="file of 'SMILES [name]' lines (repeatable)",
    )
    p.add_argument(
        "--xyz",
        "--structure",
        dest="structures",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="XYZ or other ASE-readable file, all frames (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0xF00D, help="seed of the RDKit embedding")
    p.add_argument("--json", action="store_true", help="one JSON object per molecule")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--runtime",
        choices=("eager", "torchscript"),
        default="eager",
        help="eager PyTorch (default) or a frozen TorchScript graph (same values, faster for "
        "small batches; compiled once per call)",
    )
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from chemprune.checkpoint import load_model
    from chemprune.chem.structures import (
        StructureError,
        read_smiles_file,
        read_structure_file,
        smiles_to_structure,
        structures_to_batch,
    )
    from chemprune.cli import EXIT_PARTIAL, CliError, set_threads
    from chemprune.runtime import with_runtime

    set_threads(args.threads)
    if not (args.smiles or args.smiles_file or args.structures):
        raise CliError("nothing to predict: give --smiles, --smiles-file or --xyz")
    model, ckpt = load_model(args.model)
    target = ckpt["target"]
    model = with_runtime(model, args.runtime)

    # (kind, label, structure or error) in input order
    items: list[tuple[str, str, object]] = []
    inputs: list[tuple[str, str]] = [(s, s) for s in args.smiles]
    for f in args.smiles_file:
        try:
            inputs += [(smi, name) for smi, name in read_smiles_file(f)]
        except StructureError as err:
            items.append(("file", str(f), err))
    for smi, name in inputs:
        try:
            items.append(("smiles", smi, smiles_to_structure(smi, seed=args.seed)))
        except StructureError as err:
            items.append(("smiles", smi, err))
        if name != smi and not isinstance(items[-1][2], Exception):
            items[-1][2].name = name
    for f in args.structures:
        try:
            items += [("file", s.name, s) for s in read_structure_file(f)]
        except StructureError as err:
            items.append(("file", str(f), err))

    good = [(i, it[2]) for i, it in enumerate(items) if not isinstance(it[2], Exception)]
    values: dict[int, float] = {}
    with torch.inference_mode():
        for start in range(0, len(good), args.batch_size):
            chunk = good[start : start + args.batch_size]
            z, pos, batch = structures_to_batch([s for _, s in chunk])
            out = model(z, pos, batch, num_molecules=len(chunk))
            values.update({i: float(v) for (i, _), v in zip(chunk, out, strict=True)})

    failed = 0
    for i, (kind, label, obj) in enumerate(items):
        if isinstance(obj, Exception):
            failed += 1
            print(f"chemprune: error: {obj}", file=sys.stderr)
            continue
        record = {"smiles": label} if kind == "smiles" else {"file": label}
        if kind == "smiles" and obj.name != label:
            record["name"] = obj.name
        record.update(target=target["name"], value=values[i], unit=target["unit"])
        if args.json:
            print(json.dumps(record))
        else:
            shown = record.get("name", label)
            print(f"{shown}\t{target['name']} = {values[i]:.4f} {target['unit']}")
    return EXIT_PARTIAL if failed else 0
