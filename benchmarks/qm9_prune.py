"""Kernel pruning of SchNet on QM9 with its controls (CPU): does pruning beat the obvious?

Per target (``--targets``, default gap and U0, eV): one dense parent (``--hidden``/``--filters``/
``--interactions``, default 128/128/6, 50 Gaussians, cutoff 5 A) trained with
``chemprune.pipeline.train`` on a seeded 80/10/10 split of ``--subset`` molecules (or loaded, ``--dense``),
then, at each kernel sparsity (``--sparsities``, default 0.5/0.75/0.9; a kernel is a block's filter
channels and its filter network's hidden units), these rows, all fine-tuned with the same budget
(``--finetune-steps``), learning rate and schedule (``--lr``, ``--lr-schedule``) and the same
distillation from the parent (``--distill``):

=================  ===============================================================================
row                what it is
=================  ===============================================================================
dense              the parent as trained
dense_continued    control (a): the parent trained on for the same steps, schedule and lr (no
                   pruning): an under-trained parent improves with any extra training
scratch_b          control (b): the pruned architecture trained from scratch with the parent's
                   epochs plus the fine-tuning steps, the parent's settings (Liu et al. 2019)
attention          attention AutoPrune of the kernel (half the budget trains the gates)
autoprune          AutoPrune with a free gate per unit, same split of the budget
magnitude          structured L1 of the kernel, then fine-tuning
random             random units (seeded), then the same fine-tuning: the floor
torch_pruning      control (c): Torch-Pruning's MetaPruner with L1 importance on every width of
                   chemprune's SchNet at the same ratio, then the same fine-tuning and
                   distillation (through adapters: its atom basis shrinks)
=================  ===============================================================================

Each finished row is written to ``--work-dir/rows/<target>/`` (its JSON and checkpoint) as soon
as it is done, so a rerun skips it. At the end every model of a target is measured in the same
process: test MAE, parameters, MACs on 64 test molecules, file size, CPU molecules/s at batch 1
and 64 (``--threads``, inference mode, warm-up, median of ``--repeats`` interleaved passes over
fixed test molecules; at each ``--time-threads`` count), speedups vs dense; the load average
and OMP_WAIT_POLICY are recorded. Rerunning with the same ``--work-dir`` trains nothing that is
saved and measures again (e.g. on an idle machine, or with ``OMP_WAIT_POLICY`` set otherwise). Writes a table, the JSON
(``--out``) and a plot of test MAE against speedup (``--plot``). OMP_WAIT_POLICY=PASSIVE is set
before torch is imported.

On the tabulated runtime (issue 37): ``--kind filter`` prunes the filter channels alone (the
filter networks' hidden units cost nothing once tabulated), ``--filter-grid K`` trains and
fine-tunes every row on a filter grid, and ``--tabulate K`` measures every row tabulated (test
MAE, MACs, speed) beside the exact parent (the reference of the speedups) and the tabulated
parent (row ``dense_tabulated``). An imported parent (``--dense``, e.g. from ``chemprune import
--format schnetpack-legacy``) keeps its own split; ``--parent-epochs 0`` gives scratch_b the
fine-tuning budget only (a GPU-trained parent's budget cannot be matched on this CPU).

    .venv/bin/python benchmarks/qm9_prune.py --targets gap --work-dir runs/qm9_prune   # hours
    .venv/bin/python benchmarks/qm9_prune.py --quick --out /tmp/qp.json --plot /tmp/qp.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from harness import environment, finish, header, pyplot, save_figure, write_results  # noqa: E402
from qm9_rows import MARKERS, METHODS, ROOT, dense_model, log, run_rows, tdict  # noqa: E402
from torch import nn  # noqa: E402

from chemprune.common.atomic import atomic_save  # noqa: E402
from chemprune.engines.prune import summarize  # noqa: E402
from chemprune.molecules.checkpoint import load_model, model_checkpoint  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.molecules.data.targets import get_target  # noqa: E402
from chemprune.molecules.models.schnet import SchNet  # noqa: E402
from chemprune.pipeline.evaluate import evaluate_model  # noqa: E402


# ---------------------------------------------------------------------- measuring
def widths(model: SchNet) -> dict[str, Any]:
    c = model.config()
    keys = ("hidden_channels", "filter_channels", "filter_hidden_channels")
    return {k: c[k] for k in (*keys, "interaction_channels")}


@torch.no_grad()
def static_stats(model: SchNet, msets: tuple, split, path: Path) -> dict:
    """Test MAE (on ``--device``), parameters, MACs on 64 test molecules, file size."""
    dev_set, mset = msets
    model.to(dev_set.device).eval()
    test = evaluate_model(model, dev_set, split.test)
    model.cpu()
    b = mset.collate(split.test[:64])
    s = summarize(model, lambda m: m(b.z, b.pos, b.batch, num_molecules=b.num_molecules))
    out = {"test_mae": test["mae"], "test_rmse": test["rmse"], "params": s["params"]}
    return out | {"macs_per_batch64": s["macs"], "file_bytes": path.stat().st_size, **widths(model)}


def timing_batches(mset, split, args) -> dict[int, list]:
    """Fixed test molecules, collated beforehand: the timings cover the model only."""
    n64, n1 = min(args.time_mol64, len(split.test)), min(args.time_mol1, len(split.test))
    return {
        1: [mset.collate(split.test[i : i + 1]) for i in range(n1)],
        64: [mset.collate(split.test[i : min(i + 64, n64)]) for i in range(0, n64, 64)],
    }


def one_pass(model: nn.Module, batches: list) -> float:
    n = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            n += model(b.z, b.pos, b.batch, num_molecules=b.num_molecules).numel()
    return n / (time.perf_counter() - t0)


def measure_speed(models: list[nn.Module], batches: dict[int, list], args) -> list[dict]:
    """Median molecules/s per model and batch size; models interleaved within each repeat."""
    passes: list[dict[int, list[float]]] = [{bs: [] for bs in batches} for _ in models]
    for m in models:
        m.eval()
        for bl in batches.values():
            one_pass(m, bl[: max(2, len(bl) // 8)])  # warm-up
    for rep in range(args.repeats):
        k = rep % len(models)
        for i in list(range(k, len(models))) + list(range(k)):
            for bs, bl in batches.items():
                passes[i][bs].append(one_pass(models[i], bl))
    return [{f"mol_per_s_b{bs}": statistics.median(v) for bs, v in p.items()} for p in passes]


def run_target(target: str, data, args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    dense, split, info = dense_model(args, data, target)
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(get_target(target)))
    dev_set = mset.to(args.device)  # training, fine-tuning and test MAE run there
    dense_path = tmp / f"{target}_dense.pt"
    atomic_save(model_checkpoint(dense, target=tdict(target)), dense_path)
    rows = [{"target": target, "method": "dense", "sparsity": 0.0, "model": str(dense_path)}]
    if args.tabulate:  # the tabulated parent: what pruning has to beat on the same runtime
        rows.append({**rows[0], "method": "dense_tabulated"})
    rows += [dict(r) for r in run_rows(target, dense, info, data, dev_set, split, args)]
    live = []
    for row in rows:
        row["unit"] = get_target(target).unit
        if "error" in row:
            continue
        model, _ = load_model(row["model"])
        if args.tabulate and row["method"] != "dense":
            model = model.tabulated(args.tabulate).eval()
            row["tabulated_knots"] = args.tabulate
            path = tmp / f"{target}_{row['method']}_{row['sparsity']:g}_tab.pt"
            atomic_save(model_checkpoint(model, target=tdict(target)), path)
            row["model_tabulated"] = str(path)
        path = Path(row.get("model_tabulated", row["model"]))
        row.update(static_stats(model, (dev_set, mset), split, path))
        live.append((row, model))
    batches = timing_batches(mset, split, args)
    for k, threads in enumerate(args.time_threads):  # the first count is the table's
        log(f"{target}: timing {len(live)} models on {threads} thread(s)")
        torch.set_num_threads(threads)
        speeds = measure_speed([m for _, m in live], batches, args)
        for (row, _), sp in zip(live, speeds, strict=True):
            row.update({f"{key}_t{threads}": v for key, v in sp.items()})
            if k == 0:
                row.update(sp)
    torch.set_num_threads(args.threads)
    ref = rows[0]
    for row in (r for r in rows if "mol_per_s_b64" in r):
        for bs in (1, 64):
            row[f"speedup_b{bs}"] = row[f"mol_per_s_b{bs}"] / ref[f"mol_per_s_b{bs}"]
            for t in args.time_threads:
                key = f"mol_per_s_b{bs}_t{t}"
                row[f"speedup_b{bs}_t{t}"] = row[key] / ref[key]
    return {
        "target": tdict(target), "split_sizes": list(split.sizes), "split_seed": split.seed,
        "dense": info, "seconds": time.perf_counter() - t0, "rows": rows,
        "goals": goals(rows),
    }  # fmt: skip


def goals(rows: list[dict]) -> dict[str, Any]:
    """The issues' checks, computed from the rows: the fastest row within +5% of the dense
    parent's test MAE (its speedup at batch 64; 0 when none is), and at every sparsity with an
    attention row, its test MAE against the dense model continued and each control's."""
    done = [r for r in rows if "test_mae" in r]
    if not done:
        return {}
    dense = done[0]
    near = [r for r in done[1:] if r["test_mae"] <= 1.05 * dense["test_mae"]]
    out: dict[str, Any] = {
        "fastest_within_5pct_speedup_b64": max((r["speedup_b64"] for r in near), default=0.0)
    }
    by = {(r["method"], r["sparsity"]): r for r in done}
    cont = by.get(("dense_continued", 0.0))
    for (method, sp), att in sorted(by.items()):
        if method != "attention":
            continue
        out[f"attention_{sp:g}_vs_dense"] = att["test_mae"] / dense["test_mae"] - 1
        out[f"attention_{sp:g}_speedup_b64"] = att["speedup_b64"]
        if cont is not None:
            out[f"attention_{sp:g}_vs_dense_continued"] = att["test_mae"] / cont["test_mae"] - 1
        for other in ("scratch_b", "torch_pruning", "magnitude", "random", "autoprune"):
            r = by.get((other, sp))
            if r is not None:
                out[f"attention_{sp:g}_minus_{other}"] = att["test_mae"] - r["test_mae"]
    return out


# ---------------------------------------------------------------------- report
def format_table(results: list[dict]) -> str:
    head = (
        f"{'target':<6} {'method':<16} {'sparsity':>8} {'test MAE':>10} {'params':>9} "
        f"{'MMACs/64':>9} {'file KB':>8} {'mol/s b1':>9} {'mol/s b64':>9} {'x b1':>6} {'x b64':>6}"
    )
    lines = [head, "-" * len(head)]
    for res in results:
        for r in res["rows"]:
            start = f"{r['target']:<6} {r['method']:<16} {r['sparsity']:>8.2f} "
            if "error" in r:
                lines.append(start + f"FAILED: {r['error']}")
                continue
            lines.append(
                start + f"{r['test_mae']:>10.4f} {r['params']:>9,d} "
                f"{r['macs_per_batch64'] / 1e6:>9.1f} {r['file_bytes'] / 1024:>8.1f} "
                f"{r['mol_per_s_b1']:>9.1f} {r['mol_per_s_b64']:>9.1f} "
                f"{r['speedup_b1']:>6.2f} {r['speedup_b64']:>6.2f}"
            )
        for key, value in res["goals"].items():
            lines.append(f"  {key}: {value:+.4f}")
    lines.append(
        "(test MAE in the target's unit; speedups vs the dense parent, same process; sparsity = "
        "share of kernel units removed (torch_pruning: of every width; ssl_depth: of the blocks; force: of each atom-wise rank); dense_continued and "
        "scratch_b are the controls)"
    )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        rows = [r for r in res["rows"] if "error" not in r]
        dense = rows[0]
        ax.axhline(dense["test_mae"], color="k", lw=0.8, label=f"dense {dense['test_mae']:.4f}")
        ax.plot([1.0], [dense["test_mae"]], "k*", ms=11)
        ax.axhline(1.05 * dense["test_mae"], color="k", lw=0.6, ls="--", label="dense +5%")
        for method in dict.fromkeys(r["method"] for r in rows[1:]):
            pts = sorted((r["speedup_b64"], r["test_mae"], r["sparsity"]) for r in rows
                         if r["method"] == method)  # fmt: skip
            xs, ys, sp = zip(*pts, strict=True)
            line = ax.plot(xs, ys, marker=MARKERS.get(method, "o"), ls=":", label=method)[0]
            for x, y, s in pts:
                if s:
                    ax.annotate(f"{s:g}", (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", color=line.get_color())  # fmt: skip
        failed = [r["method"] for r in res["rows"] if "error" in r]
        title = f"QM9 {res['target']['name']} ({res['target']['unit']}), SchNet kernel pruning"
        ax.set_title(title + (f"\nfailed: {', '.join(sorted(set(failed)))}" if failed else ""))
        ax.set_xlabel("speedup vs dense, CPU batch 64")
        ax.set_ylabel(f"test MAE ({res['target']['unit']})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------- main
def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=lambda s: s.split(","), default=["gap", "U0"])
    p.add_argument(
        "--methods", type=lambda s: s.split(","), default=list(METHODS),
        help=f"any of {', '.join(METHODS)} (default: all)",
    )  # fmt: skip
    p.add_argument("--sparsities", type=floats, default=None, help="default 0.5,0.75,0.9")
    p.add_argument(
        "--tp-ratios", type=floats, default=None,
        help="Torch-Pruning's ratios (default: --sparsities); it prunes every width, so other "
        "ratios than the kernel's find its model of equal measured speed",
    )  # fmt: skip
    p.add_argument(
        "--subset", type=int, default=None,
        help="molecules split 80/10/10 (default 20000); 0: the standard 110,000/10,000/10,831",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="training and fine-tuning batch")
    p.add_argument("--device", default="cpu", help="training and fine-tuning device")
    p.add_argument("--dense", type=Path, nargs="*", default=[], help="parent checkpoints to reuse")
    p.add_argument("--parent-epochs", type=int, default=None,
                   help="with --dense: the epochs it was trained for (scratch_b's budget)")  # fmt: skip
    p.add_argument("--dense-minutes", type=float, default=None, help="default 60")
    p.add_argument("--dense-epochs", type=int, default=None, help="parent epochs (and minutes)")
    p.add_argument("--dense-lr", type=float, default=1e-3, help="parent (and scratch_b) lr")
    p.add_argument("--finetune-minutes", type=float, default=None, help="default 60 (a cap)")
    p.add_argument("--finetune-steps", type=int, default=None, help="default 2000 per row")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning lr (rewound to the peak)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine")
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument(
        "--ema", type=float, default=0.0,
        help="every row's fine-tuning keeps an exponential moving average of the weights with "
        "this decay (0: the weights themselves)",
    )  # fmt: skip
    p.add_argument("--distill", choices=("none", "output", "features"), default="features")
    p.add_argument(
        "--refit",
        type=lambda s: tuple(x for x in s.split(",") if x),
        default=(),
        help="pruning rows: right after the removal refit these layers of every block "
        "(f2out,out) by least squares to the parent's outputs (1,024 training molecules)",
    )
    p.add_argument("--gradual", action="store_true",
                   help="magnitude and random remove units gradually (as the gates close)")  # fmt: skip
    p.add_argument("--distill-output-weight", type=float, default=1.0)
    p.add_argument("--distill-feature-weight", type=float, default=1.0)
    p.add_argument("--hidden", type=int, default=None, help="default 128")
    p.add_argument("--filters", type=int, default=None, help="default 128")
    p.add_argument("--interactions", type=int, default=None, help="default 6")
    p.add_argument("--lam", type=float, default=1e-4, help="AutoPrune/attention gate strength")
    p.add_argument(
        "--kind", default="kernel",
        help="the structured widths the engine rows prune (default kernel; filter: the filter "
        "channels alone, what a tabulated model still pays for)",
    )  # fmt: skip
    p.add_argument(
        "--filter-grid", type=int, default=0,
        help="train and fine-tune every row on a filter grid of K knots (0: exact filters, "
        "as the committed results were made)",
    )  # fmt: skip
    p.add_argument(
        "--tabulate", type=int, default=0,
        help="measure every row tabulated on K knots (test MAE, MACs, speed), beside the exact "
        "parent (the speedups' reference) and the tabulated parent (0: exact rows)",
    )  # fmt: skip
    p.add_argument("--target-bins", type=int, default=5, help="cdc rows: target bins as classes")
    p.add_argument(
        "--evolved",
        default=str(ROOT / "benchmarks/results/reaction_class_evolved.json"),
        help="evolved row: a discriminant, expression or evolution JSON (its best; "
        "default: what benchmarks/reaction_class_prune.py evolved)",
    )
    p.add_argument("--ssl-strength", type=float, default=1e-4, help="ssl rows: group lasso")
    p.add_argument("--depth-sparsity", type=float, default=1 / 3,
                   help="ssl_depth: share of the blocks removed (default 1/3: 2 of 6)")  # fmt: skip
    p.add_argument("--force-strength", type=float, default=1e-3, help="force row: its weight")
    p.add_argument("--force-layers", default="atomwise", help="force row: layer families")
    p.add_argument("--rank-energy", type=float, default=None,
                   help="force row: keep the rank holding this energy (instead of the "
                   "sparsities; the row's sparsity column then shows it)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2, help="training and fine-tuning threads")
    p.add_argument(
        "--time-threads", type=lambda s: [int(x) for x in s.split(",")], default=[2, 1],
        help="thread counts the speed is measured at (the first is the table's; default 2,1)",
    )  # fmt: skip
    p.add_argument("--repeats", type=int, default=None, help="timed passes, default 5")
    p.add_argument("--time-mol64", type=int, default=512, help="test molecules timed at batch 64")
    p.add_argument("--time-mol1", type=int, default=128, help="test molecules timed at batch 1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=None, help="rows and runs (default: temporary)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/qm9_prune.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/qm9_prune.png")
    p.add_argument(
        "--only-done", action="store_true",
        help="measure the rows saved in --work-dir and train none (rows not saved are left out)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny smoke run of every code path")
    args = p.parse_args(argv)
    full = {"sparsities": [0.5, 0.75, 0.9], "subset": 20000, "dense_minutes": 60.0}
    full |= {"finetune_minutes": 60.0, "finetune_steps": 2000, "hidden": 128, "filters": 128}
    full |= {"interactions": 6, "repeats": 5}
    quick = {"sparsities": [0.75], "subset": 300, "dense_minutes": 0.2, "dense_epochs": 2}
    quick |= {"finetune_minutes": 0.2, "finetune_steps": 6, "hidden": 16, "filters": 16}
    quick |= {"interactions": 2, "repeats": 1, "time_mol64": 64, "time_mol1": 8}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.tp_ratios is None:
        args.tp_ratios = list(args.sparsities)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if any(not 0 < s < 1 for s in args.sparsities + args.tp_ratios):
        p.error("sparsities must be in (0, 1)")
    if args.finetune_steps < 1:
        p.error("--finetune-steps must be >= 1 (the budget every row shares)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    env = environment(args.threads)
    data = load_qm9()
    results = []
    with tempfile.TemporaryDirectory(prefix="qm9_prune_") as tmp:
        if args.work_dir is None:
            args.work_dir = Path(tmp) / "runs"
        for target in args.targets:
            results.append(run_target(target, data, args, Path(tmp)))
    finish(env)
    text = format_table(results)
    print(text)
    result = {
        **header("qm9_prune", args),
        **env,
        "results": results,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }
    result["settings"]["dense"] = [str(d) for d in args.dense]
    write_results(args.out, result)
    plot(results, args.plot)
    log(f"wrote {args.out} and {args.plot} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
