"""``chemprune predict``: property predictions from SMILES or structure files."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from chemprune.common.options import positive_int, seed_int, threads_int

DESCRIPTION = """Predict the model's target for molecules given as SMILES (3D structure by RDKit
ETKDG embedding and MMFF relaxation) or structure files (XYZ or anything ASE reads). A molecule
that cannot be used (invalid SMILES, a net charge: the models are for neutral molecules, failed
embedding, malformed file, element outside H, C, N, O, F, atoms on top of each other, too large)
gets a one-line error on stderr; the others are still
predicted, and the exit code is 1. Files may be '-' (standard input, once), pipes or FIFOs. The fragments of a multi-fragment SMILES (a salt, 'C.C') are
embedded one by one and placed apart, beyond the model's cutoff (or refused: --fragments
refuse)."""


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
        help="file of 'SMILES [name]' lines, UTF-8 (repeatable); '-' reads standard input, and "
        "pipes, FIFOs and <(...) work too",
    )
    p.add_argument(
        "--xyz",
        "--structure",
        dest="structures",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="XYZ or other ASE-readable file, all frames (repeatable); the format comes from "
        "the suffix and contents; '-' reads standard input, and pipes, FIFOs and <(...) work "
        "too: read as XYZ when the name has no suffix",
    )
    p.add_argument("--seed", type=seed_int, default=0xF00D, help="seed of the RDKit embedding")
    p.add_argument(
        "--fragments",
        choices=("separate", "refuse"),  # chemprune.molecules.chem.structures.FRAGMENT_MODES
        default="separate",
        help="a multi-fragment SMILES: embed its fragments apart, out of each other's reach "
        "(default), or refuse it",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per molecule")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument(
        "--runtime",
        choices=("eager", "torchscript", "export", "compiled"),  # chemprune.deploy.runtime.RUNTIMES
        default="eager",
        help="eager PyTorch (default), a frozen TorchScript graph (same values, faster for "
        "small batches), the torch.export program, or torch.compile (fastest for many "
        "molecules; ~10 s to compile first); compiled once per call",
    )
    p.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import EXIT_PARTIAL, CliError
    from chemprune.common.options import printable
    from chemprune.deploy.runtime import with_runtime
    from chemprune.molecules.checkpoint import load_model
    from chemprune.molecules.chem.inputs import input_label, stdin_once
    from chemprune.molecules.chem.structures import (
        StructureError,
        read_smiles_file,
        read_structure_file,
        smiles_to_structure,
        structures_to_batch,
    )

    set_threads(args.threads)
    if not (args.smiles or args.smiles_file or args.structures):
        raise CliError("nothing to predict: give --smiles, --smiles-file or --xyz")
    stdin_once([*args.smiles_file, *args.structures], "--smiles-file/--xyz")
    model, ckpt = load_model(args.model)
    target = ckpt["target"]
    gap = max(10.0, 2.0 * model.cutoff)  # fragments beyond the model's reach (read before
    model = with_runtime(model, args.runtime)  # a frozen runtime hides the attribute)

    # (kind, label, structure or error) in input order
    items: list[tuple[str, str, object]] = []
    inputs: list[tuple[str, str]] = [(s, s) for s in args.smiles]
    for f in args.smiles_file:
        try:
            inputs += [(smi, name) for smi, name in read_smiles_file(f)]
        except StructureError as err:
            items.append(("file", input_label(f), err))
    for smi, name in inputs:
        try:
            struct = smiles_to_structure(
                smi, seed=args.seed, fragments=args.fragments, fragment_gap=gap
            )
            items.append(("smiles", smi, struct))
        except StructureError as err:
            items.append(("smiles", smi, err))
        if name != smi and not isinstance(items[-1][2], Exception):
            items[-1][2].name = name
    for f in args.structures:
        try:
            items += [("file", s.name, s) for s in read_structure_file(f)]
        except StructureError as err:
            items.append(("file", input_label(f), err))

    good = [(i, it[2]) for i, it in enumerate(items) if not isinstance(it[2], Exception)]
    values: dict[int, float] = {}
    with torch.inference_mode():
        for start in range(0, len(good), args.batch_size):
            chunk = good[start : start + args.batch_size]
            z, pos, batch = structures_to_batch([s for _, s in chunk])
            out = model(z, pos, batch, num_molecules=len(chunk))
            values.update({i: float(v) for (i, _), v in zip(chunk, out, strict=True)})

    name, unit = printable(target["name"]), printable(target["unit"])  # read from the file
    failed = 0
    for i, (kind, label, obj) in enumerate(items):
        if not isinstance(obj, Exception) and not math.isfinite(values[i]):
            obj = FloatingPointError(
                f"{label}: the model gave a non-finite value ({values[i]}); its weights may be "
                "damaged"
            )
        if isinstance(obj, Exception):
            failed += 1
            print(f"chemprune: error: {printable(obj)}", file=sys.stderr)
            continue
        record = {"smiles": label} if kind == "smiles" else {"file": label}
        if kind == "smiles" and obj.name != label:
            record["name"] = obj.name
        if obj.fragments > 1:
            record["fragments"] = obj.fragments
            print(
                f"chemprune: note: {printable(label)}: {obj.fragments} fragments, embedded apart "
                f"({gap:g} A between them)",
                file=sys.stderr,
            )
        record.update(target=target["name"], value=values[i], unit=target["unit"])
        if args.json:
            print(json.dumps(record, allow_nan=False))
        else:
            shown = printable(record.get("name", label))
            print(f"{shown}\t{name} = {values[i]:.4f} {unit}")
    return EXIT_PARTIAL if failed else 0
