"""``chemprune demo``: train a small SchNet on a QM9 subset, test it, predict named molecules."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from chemprune.cli.options import (
    nonneg_float,
    open_fraction,
    positive_float,
    positive_int,
    threads_int,
)

NAMED_MOLECULES = [
    ("ethanol", "CCO"),
    ("acetone", "CC(C)=O"),
    ("benzene", "c1ccccc1"),
    ("pyridine", "c1ccncc1"),
    ("acetonitrile", "CC#N"),
    ("urea", "NC(N)=O"),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small model for a few minutes and use it",
        description="Train a small SchNet on a QM9 subset (about 5 minutes on 2 cores), "
        "print its test MAE next to a mean predictor's, and predict a few "
        "named molecules from SMILES.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="run folder (replaced: new, empty or an earlier demo's)",
    )
    p.add_argument("--target", default="gap")
    p.add_argument("--subset", type=positive_int, default=20_000)
    p.add_argument("--minutes", type=positive_float, default=3.0, help="training budget")
    p.add_argument(
        "--prune-minutes",
        type=nonneg_float,
        default=1.0,
        help="attention-AutoPrune budget (gates, then fine-tuning, distilled from the dense "
        "model); 0 skips pruning",
    )
    p.add_argument(
        "--sparsity",
        type=open_fraction,
        default=0.5,
        help="fraction of each block's kernel removed (filter channels and filter-network "
        "hidden units)",
    )
    p.add_argument("--threads", type=threads_int, default=None)
    p.set_defaults(run=run_demo)


DEMO_MARKER = ".chemprune-demo"


def _replace_demo_folder(out: Path) -> None:
    """Empty ``out`` for a new demo run, if it is a demo's (or empty); refuse anything else."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"--out {out} is a file; give a folder")
        if any(out.iterdir()) and not (out / DEMO_MARKER).exists():
            raise FileExistsError(
                f"--out {out} holds files that `chemprune demo` did not write; the demo replaces "
                "its folder, so give an empty or new one"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / DEMO_MARKER).write_text("made by chemprune demo; replaced by the next demo run\n")


def run_demo(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from chemprune.checkpoint import load_model
    from chemprune.chem.structures import smiles_to_structure, structures_to_batch
    from chemprune.cli import set_threads
    from chemprune.cli._common import load_dataset_and_split
    from chemprune.data.batching import MoleculeSet
    from chemprune.pipeline.evaluate import evaluate_model
    from chemprune.pipeline.train import TrainSettings, train

    set_threads(args.threads)
    _replace_demo_folder(args.out)
    t0 = time.perf_counter()
    steps = 4 if args.prune_minutes > 0 else 3
    print(
        f"[1/{steps}] QM9 from qm9pack (cached after the first run), {args.subset} random molecules"
    )
    data, split, source = load_dataset_and_split(None, args.subset, seed=0)
    print(f"      {source}; train/val/test = {split.sizes}")
    settings = TrainSettings(
        target=args.target,
        hidden_channels=64,
        filter_channels=64,
        num_interactions=3,
        epochs=1000,
        batch_size=32,
        lr=1e-3,
        lr_patience=3,
        seed=0,
    )
    print(
        f"[2/{steps}] training SchNet (hidden 64, filters 64, 3 interactions) on {args.target} "
        f"for {args.minutes:g} minutes"
    )
    summary = train(
        data,
        split,
        args.out,
        settings=settings,
        max_minutes=args.minutes,
        data_source=source,
        progress=True,
    )
    model, ckpt = load_model(summary["best"])
    unit = ckpt["target"]["unit"]
    y = data.target_values(args.target)
    mset = MoleculeSet(data.z, data.pos, data.ptr, y)
    test = evaluate_model(model, mset, split.test)
    baseline = float(np.abs(y[split.test] - y[split.train].mean()).mean())
    print(
        f"      test MAE {test['mae']:.4f} {unit} on {test['n']} molecules "
        f"(predicting the training mean: {baseline:.4f} {unit})"
    )
    print(f"[3/{steps}] predictions from SMILES (RDKit ETKDG + MMFF geometry)")
    structs = [smiles_to_structure(smi) for _, smi in NAMED_MOLECULES]
    z, pos, batch = structures_to_batch(structs)
    with torch.inference_mode():
        pred = model(z, pos, batch, num_molecules=len(structs))
    for (name, smi), v in zip(NAMED_MOLECULES, pred.tolist(), strict=True):
        print(f"      {name:<13} {smi:<10} {args.target} = {v:7.3f} {unit}")
    final = summary["best"]
    if args.prune_minutes > 0:
        final = _prune_and_compare(args, model, test["mae"], ckpt, mset, split, steps)
    _released_tabulated(data, structs, z, pos, batch)
    print(f"checkpoint: {final}   ({time.perf_counter() - t0:.0f} s in all)")
    print(f"try: chemprune predict --model {final} --smiles 'CCO' --json")
    return 0


RELEASED = Path(__file__).resolve().parents[2] / "models"


def _released_tabulated(data, structs, z, pos, batch) -> None:
    """The released gap model and its tabulated release: same predictions, the speed of each."""
    import torch

    from chemprune.checkpoint import load_model
    from chemprune.data.batching import MoleculeSet
    from chemprune.pipeline.evaluate import throughput

    exact_path = RELEASED / "schnet_gap_small.pt"
    tab_path = RELEASED / "schnet_gap_small_tab.pt"
    if not (exact_path.exists() and tab_path.exists()):
        return  # an installed copy without the repository's models/
    exact, ckpt = load_model(exact_path)
    tab, tab_ckpt = load_model(tab_path)
    knots = tab.table_knots[0]
    print(
        f"[+] the released gap model with its filters tabulated ({tab_path.name}: {knots} knots, "
        "checked against the exact model by `chemprune tabulate`)"
    )
    with torch.inference_mode():
        a = exact(z, pos, batch, num_molecules=len(structs))
        b = tab(z, pos, batch, num_molecules=len(structs))
    for (name, _), x, y in zip(NAMED_MOLECULES, a.tolist(), b.tolist(), strict=True):
        print(f"      {name:<13} exact {x:7.4f} eV   tabulated {y:7.4f} eV   |d| {abs(x - y):.1e}")
    mset = MoleculeSet(data.z, data.pos, data.ptr)
    test = ckpt["data"]["split"]["test"].numpy()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = {
            name: [throughput(m, mset, test[:n], batch_size=bs) for n, bs in ((1024, 64), (128, 1))]
            for name, m in (("exact", exact), ("tabulated", tab))
        }
    finally:
        torch.set_num_threads(threads)
    (e64, e1), (t64, t1) = rates["exact"], rates["tabulated"]
    rep = tab_ckpt["tabulation"]
    print(
        f"      checked on {rep['molecules']} validation molecules: max |dE| "
        f"{rep['max_abs_dE']:.1e} eV, mean {rep['mean_abs_dE']:.1e} eV (the model's MAE: "
        f"{rep['exact_val_mae']:.3f} eV)"
    )
    print(
        f"      CPU, 1 thread: batch 64 {e64:.0f} -> {t64:.0f} mol/s ({t64 / e64:.1f}x), "
        f"batch 1 {e1:.0f} -> {t1:.0f} mol/s ({t1 / e1:.1f}x)"
    )


def _prune_and_compare(args, dense, dense_mae, ckpt, mset, split, steps) -> Path:
    import torch

    from chemprune.checkpoint import atomic_save, model_checkpoint
    from chemprune.models.schnet import SchNet
    from chemprune.pipeline.compress_schnet import prune_schnet
    from chemprune.pipeline.evaluate import evaluate_model, throughput

    print(
        f"[4/{steps}] attention AutoPrune: remove {args.sparsity:.0%} of every block's kernel "
        f"(filter channels and filter-network hidden units; {args.prune_minutes:g} min of gate "
        "training and fine-tuning, the dense model teaching the pruned one)"
    )
    pruned = SchNet.from_config(ckpt["config"])
    pruned.load_state_dict(dense.state_dict())
    report = prune_schnet(
        pruned,
        mset,
        split,
        method="attention",
        sparsity=args.sparsity,
        kind="kernel",
        finetune_minutes=args.prune_minutes,
        lr=1e-3,
        lr_schedule="cosine",
        distill="features",
        engine_options={"lam": 1e-3},
        log=lambda m: None,
    )
    out = args.out / "pruned.pt"
    atomic_save(
        model_checkpoint(
            pruned, target=ckpt["target"], data=ckpt.get("data"), extra={"pruning": report}
        ),
        out,
    )
    unit = ckpt["target"]["unit"]
    pruned_mae = evaluate_model(pruned, mset, split.test)["mae"]
    # timed on one thread: the fastest setting on a small CPU for both models (README,
    # "Running the models fast"), so the dense reference is not handicapped
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for name, m, mae in (("dense", dense, dense_mae), ("pruned", pruned, pruned_mae)):
            rates = [
                throughput(m, mset, split.test[:n], batch_size=bs) for n, bs in ((512, 64), (64, 1))
            ]
            kernel = f"{m.filter_channels[0]}/{m.interactions[0].filter_hidden_channels}"
            rows.append((name, kernel, sum(p.numel() for p in m.parameters()), mae, *rates))
    finally:
        torch.set_num_threads(threads)
    base64, base1 = rows[0][4], rows[0][5]
    print(
        f"      {'model':<7} {'kernel F/H':<11} {'params':>8} {'test MAE':>10} "
        f"{'mol/s b64':>10} {'x':>6} {'mol/s b1':>9} {'x':>6}   (CPU, 1 thread)"
    )
    for name, kernel, n, mae, r64, r1 in rows:
        print(
            f"      {name:<7} {kernel:<11} {n:>8,} {mae:>7.4f} {unit:<2} {r64:>10.0f} "
            f"{r64 / base64:>5.2f}x {r1:>9.0f} {r1 / base1:>5.2f}x"
        )
    print(
        f"      test MAE of the pruned model vs the dense one: {pruned_mae / dense_mae - 1:+.1%} "
        "(the pruned one also had the pruning minutes of extra training; "
        "benchmarks/qm9_prune.py has the controls)"
    )
    return out
