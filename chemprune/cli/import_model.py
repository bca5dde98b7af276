"""``chemprune import``: a trained PyG SchNet (its ``state_dict``) as a chemprune checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from chemprune.common.options import finite_float, positive_float, positive_int, seed_int

DESCRIPTION = """Turn a trained PyTorch Geometric SchNet into a chemprune checkpoint with
identical outputs, so that evaluate, predict, prune and export take it. --weights is the file of
its state_dict (torch.save(model.state_dict(), PATH)); the widths are read from it, while what a
state_dict does not hold (cutoff, readout, mean, std) must be given as the model was built. The
data split recorded for later fine-tuning and evaluation is chosen here (--subset, --seed): use
molecules the model was not trained on for --split test numbers to mean anything.

--format schnetpack-legacy reads a schnetpack 0.x model file (a legacy torch.save pickle of
whole modules, e.g. its best_model) without running any code from it: the architecture,
cutoff, readout, mean, std and atom references are read from the file (do not give --cutoff,
--readout, --mean or --std), and --split takes its split.npz (indices into all 133,885 QM9
molecules), mapped to this data set's rows through molecule numbers."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="import a PyG or schnetpack 0.x SchNet", description=DESCRIPTION
    )
    p.add_argument(
        "--format", choices=["pyg", "schnetpack-legacy"], default="pyg", help="kind of --weights"
    )
    p.add_argument(
        "--weights", required=True, type=Path, help="PyG state_dict or schnetpack 0.x model file"
    )
    p.add_argument("--target", required=True, help="QM9 target it predicts (gap, U0, ...)")
    p.add_argument(
        "--cutoff", type=positive_float, default=None, help="PyG's cutoff (default 10.0)"
    )
    p.add_argument("--readout", choices=["add", "mean"], default=None, help="PyG's (default add)")
    p.add_argument(
        "--split", type=Path, default=None, help="schnetpack split.npz (schnetpack-legacy only)"
    )
    p.add_argument("--mean", type=finite_float, default=None, help="PyG's mean (if it was set)")
    p.add_argument("--std", type=positive_float, default=None, help="PyG's std (if it was set)")
    p.add_argument("--data-dir", type=Path, default=None, help="qm9-format CSV folder")
    p.add_argument(
        "--subset", type=positive_int, default=None, help="molecules in the recorded split"
    )
    p.add_argument("--seed", type=seed_int, default=None, help="seed of the recorded split")
    p.add_argument("--out", required=True, type=Path, help="chemprune checkpoint to write")
    p.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    if args.format == "schnetpack-legacy":
        from chemprune.cli.import_legacy import run_import_legacy

        return run_import_legacy(args)
    import torch

    from chemprune.cli.errors import CliError
    from chemprune.common.atomic import atomic_save, load_weights_file
    from chemprune.common.runfolder import check_output_path
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.data.splits import load_dataset_and_split
    from chemprune.molecules.data.targets import get_target
    from chemprune.molecules.interop.pyg import from_pyg, make_pyg_schnet, pyg_widths_from_state
    from chemprune.pipeline.train_state import split_dict, target_dict

    if args.split is not None:
        raise CliError("--split is for --format schnetpack-legacy")
    args.cutoff = 10.0 if args.cutoff is None else args.cutoff
    args.readout = "add" if args.readout is None else args.readout
    args.seed = 0 if args.seed is None else args.seed
    check_output_path(args.out, inputs=[("--weights", args.weights)])
    target = get_target(args.target)
    state = load_weights_file(args.weights)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CliError(f"{args.weights} is not a state_dict (a dict of tensors)")
    try:
        widths = pyg_widths_from_state(state)
    except ValueError as err:
        raise CliError(f"{args.weights}: {err}") from None
    atomref = state.get("atomref.weight")
    ref = make_pyg_schnet(
        **widths,
        cutoff=args.cutoff,
        readout=args.readout,
        mean=args.mean,
        std=args.std,
        atomref=None if atomref is None else torch.zeros_like(atomref),
    )
    try:
        ref.load_state_dict(state, strict=True)
    except RuntimeError as err:
        msg = str(err).strip().splitlines()[0]
        raise CliError(f"{args.weights} does not fit a PyG SchNet: {msg}") from None
    ref.eval()
    model = from_pyg(ref).eval()
    data, split, source = load_dataset_and_split(args.data_dir, args.subset, args.seed)
    mset = MoleculeSet(data.z, data.pos, data.ptr)
    b = mset.collate(split.val[:64])
    with torch.no_grad():
        diff = float((model(b.z, b.pos, b.batch) - ref(b.z, b.pos, b.batch).view(-1)).abs().max())
    if diff > 1e-4:
        raise CliError(f"imported model differs from the PyG one by {diff:.3g} (expected ~1e-6)")
    provenance = split_dict(split, source)
    ckpt = model_checkpoint(
        model,
        target=target_dict(target),
        data=provenance,
        extra={"imported": {"from": "torch_geometric SchNet", "file": str(args.weights)}},
    )
    atomic_save(ckpt, args.out)
    print(
        f"wrote {args.out}: PyG SchNet (hidden {widths['hidden_channels']}, "
        f"{widths['num_filters']} filters, {widths['num_interactions']} interactions) as "
        f"{target.name} in {target.unit}; outputs match to {diff:.1e} on 64 molecules"
    )
    return 0
