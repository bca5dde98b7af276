"""``chemprune import --format schnetpack-legacy``: a schnetpack 0.x model file as a checkpoint.

Options are parsed by :mod:`chemprune.cli.import_model`; the file is read without running any
code from it (:mod:`chemprune.molecules.interop.schnetpack_legacy`).
"""

from __future__ import annotations

import argparse


def run_import_legacy(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from chemprune.cli.errors import CliError
    from chemprune.common.atomic import atomic_save
    from chemprune.common.runfolder import check_output_path
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.data.qm9 import load_dataset
    from chemprune.molecules.data.splits import load_dataset_and_split
    from chemprune.molecules.data.targets import get_target
    from chemprune.molecules.interop.schnetpack_legacy import (
        SCHNETPACK_PROPERTIES,
        from_schnetpack_legacy,
        read_schnetpack_legacy,
    )
    from chemprune.molecules.interop.schnetpack_split import (
        explicit_split_dict,
        map_to_rows,
        read_schnetpack_split,
    )
    from chemprune.pipeline.train_state import split_dict, target_dict

    given = [f"--{k}" for k in ("cutoff", "readout", "mean", "std") if getattr(args, k) is not None]
    if given:
        raise CliError(
            f"{', '.join(given)}: a schnetpack 0.x model file records these; do not give them"
        )
    if args.split is not None and (args.subset is not None or args.seed is not None):
        raise CliError("--split gives the split: do not give --subset or --seed with it")
    inputs = [("--weights", args.weights)] + ([("--split", args.split)] if args.split else [])
    check_output_path(args.out, inputs=inputs)
    target = get_target(args.target)
    model, info = from_schnetpack_legacy(
        read_schnetpack_legacy(args.weights), where=f"model file {args.weights}"
    )
    prop = info["property"]
    if SCHNETPACK_PROPERTIES.get(prop) != target.name:
        known = SCHNETPACK_PROPERTIES.get(prop)
        raise CliError(
            f"{args.weights} predicts schnetpack's {prop!r}"
            + (f" (chemprune's {known})" if known else " (not a QM9 target chemprune knows)")
            + f", not {target.name}"
        )
    if args.split is not None:
        parts = read_schnetpack_split(args.split)
        data, source, _ = load_dataset(args.data_dir)
        rows, missing = map_to_rows(parts, data.ids)
        empty = [p for p in ("train", "val", "test") if len(rows[p]) == 0]
        if empty:  # (a checkpoint's split parts are never empty: chemprune.molecules.data.splits)
            raise CliError(
                f"--split {args.split}: none of its {empty[0]} molecules is in this data set "
                "(give the --data-dir the model was trained on)"
            )
        provenance = explicit_split_dict(
            rows, source, origin=f"schnetpack split {args.split}", missing=missing
        )
        val = rows["val"]
        split_note = (
            f"split from {args.split}: {len(rows['train'])}/{len(val)}/{len(rows['test'])} "
            f"molecules ({sum(missing.values())} not in this data set: "
            f"{missing['train']}/{missing['val']}/{missing['test']})"
        )
    else:
        seed = 0 if args.seed is None else args.seed
        data, split, source = load_dataset_and_split(args.data_dir, args.subset, seed)
        provenance = split_dict(split, source)
        val = split.val
        split_note = "split made here (--subset/--seed): not the model's own held-out molecules"
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(target))
    b = mset.collate(np.asarray(val[:64]))
    with torch.no_grad():
        pred = model(b.z, b.pos, b.batch).double()
    mae = float((pred - torch.as_tensor(b.y).double()).abs().mean())
    ckpt = model_checkpoint(
        model,
        target=target_dict(target),
        data=provenance,
        extra={
            "imported": {
                "from": "schnetpack 0.x model file (legacy torch.save)",
                "file": str(args.weights),
                "property": prop,
            }
        },
    )
    atomic_save(ckpt, args.out)
    print(
        f"wrote {args.out}: schnetpack 0.x SchNet (hidden {model.hidden_channels}, filters "
        f"{model.filter_channels[0]}, {len(model.interactions)} interactions, cutoff "
        f"{model.cutoff:g}, {info['aggregation']} readout) as {target.name} in {target.unit}; "
        f"{split_note}; MAE {mae:.4f} {target.unit} on {len(pred)} validation molecules"
    )
    return 0
