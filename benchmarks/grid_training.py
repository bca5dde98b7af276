"""Training on a grid vs exact filters: steps/s and validation MAE after equal steps, per seed.

Each row trains the same SchNet (default the 128/6, 5 A architecture of
``benchmarks/parents/qm9_prune_gap_128x6_20k.pt``) from scratch on the same QM9 subset and
batches with ``chemprune.pipeline.train`` for the same epochs and cosine schedule, once with
exact filters and once per ``--grids`` knot count (``TrainSettings.filter_grid``: each step
evaluates the filter networks at the knots only and interpolates the pairs). Reported per row:
the mean training step time (history's ``step_s``), and the exact validation MAE of the final
model (the saved model is the exact one, evaluated without the grid). Rows are resumable (each
run folder resumes from ``last.pt``) and written to the JSON as they finish; rows are run one
after another in this process (same threads, so steps/s compare under the same load).

    .venv/bin/python benchmarks/grid_training.py --seeds 0,1,2 --epochs 3 --grids 256 --threads 1
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import environment, finish, pyplot, save_figure, write_results  # noqa: E402

from chemprune.molecules.checkpoint import load_model  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.molecules.data.splits import make_split, subset_sizes  # noqa: E402
from chemprune.pipeline.evaluate import evaluate_model  # noqa: E402
from chemprune.pipeline.train import TrainSettings, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="gap")
    p.add_argument("--subset", type=int, default=20000)
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--grids", type=lambda s: [int(x) for x in s.split(",")], default=[256])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--filters", type=int, default=128)
    p.add_argument("--interactions", type=int, default=6)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs/grid_training")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grid_training.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/grid_training.png")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    args = p.parse_args(argv)
    if args.quick:
        args.subset, args.epochs, args.seeds = 600, 1, args.seeds[:1]
        args.hidden = args.filters = 16
        args.interactions = 2
    return args


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    rows = result["rows"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for x, mode in enumerate(modes):
        rs = [r for r in rows if r["mode"] == mode]
        axes[0].bar(x, statistics.mean(r["steps_per_s"] for r in rs), color="C0")
        axes[1].scatter([x] * len(rs), [r["val_mae"] for r in rs], color="C1")
    for ax, label in zip(axes, ("training steps/s", f"val MAE ({result['unit']})"), strict=True):
        ax.set_xticks(range(len(modes)), modes)
        ax.set_ylabel(label)
    fig.suptitle(f"{result['architecture']}, {result['steps']} steps, seeds {result['seeds']}")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_qm9()
    split = make_split(len(data), subset_sizes(args.subset, len(data)), 0)
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(args.target))
    prev = json.loads(args.out.read_text()) if args.out.exists() and not args.quick else {}
    done = {(r["mode"], r["seed"]): r for r in prev.get("rows", [])}
    steps = args.epochs * -(-len(split.train) // args.batch_size)
    result = {
        "benchmark": "grid_training",
        "target": args.target,
        "architecture": f"{args.hidden}/{args.filters}x{args.interactions}, {args.cutoff:g} A",
        "subset": args.subset,
        "epochs": args.epochs,
        "steps": steps,
        "seeds": args.seeds,
        "settings": {"batch_size": args.batch_size, "lr": args.lr, "schedule": "cosine"},
        "environment": environment(args.threads),
        "rows": list(done.values()),
        "unit": "eV",
    }
    modes = [("exact", 0)] + [(f"grid{k}", k) for k in args.grids]
    for seed in args.seeds:
        for mode, grid in modes:
            if (mode, seed) in done:
                continue
            settings = TrainSettings(
                target=args.target, hidden_channels=args.hidden, filter_channels=args.filters,
                num_interactions=args.interactions, cutoff=args.cutoff, epochs=args.epochs,
                batch_size=args.batch_size, lr=args.lr, lr_schedule="cosine", seed=seed,
                filter_grid=grid,
            )  # fmt: skip
            folder = args.work_dir / f"{args.target}_{mode}_s{seed}"
            summary = train(
                data, split, folder, settings=settings, resume=(folder / "last.pt").exists(),
                progress=False, log=lambda m, tag=f"[{mode} s{seed}]": print(tag, m, flush=True),
            )  # fmt: skip
            model, ckpt = load_model(folder / "last.pt")  # the final model, exact filters
            hist = ckpt["training"]["history"]
            step_s = statistics.mean(h["step_s"] for h in hist)
            val = evaluate_model(model, mset, split.val)
            row = {
                "mode": mode, "grid": grid, "seed": seed, "steps_per_s": 1.0 / step_s,
                "val_mae": val["mae"], "val_mae_during_training": hist[-1]["val_mae"],
                "train_minutes": hist[-1]["time_s"] / 60.0,
                "best_val_mae": summary.get("best_val_mae"),
            }  # fmt: skip
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
            if not args.quick:
                write_results(args.out, result)
    rows = result["rows"]
    print(f"\n{'mode':>9} {'steps/s':>9} {'val MAE (mean +- sd over seeds)':>32}")
    summary = {}
    for mode, _ in modes:
        rs = [r for r in rows if r["mode"] == mode]
        maes = [r["val_mae"] for r in rs]
        sd = statistics.stdev(maes) if len(maes) > 1 else 0.0
        sps = statistics.mean(r["steps_per_s"] for r in rs)
        summary[mode] = {"steps_per_s": sps, "val_mae_mean": statistics.mean(maes), "sd": sd}
        print(f"{mode:>9} {sps:9.2f} {statistics.mean(maes):24.4f} +- {sd:.4f}")
    for mode, _ in modes[1:]:
        summary[mode]["speedup"] = summary[mode]["steps_per_s"] / summary["exact"]["steps_per_s"]
        print(f"{mode}: {summary[mode]['speedup']:.2f}x steps/s")
    result["summary"] = summary
    finish(result["environment"])
    if not args.quick:
        write_results(args.out, result)
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
