"""DARTS with distillation against hand-designed and pruned SchNets of the same cost (issue 18).

The teacher is a trained 128/6 SchNet with its split inside (default: the parent of the pruning
benchmark, ``benchmarks/parents/qm9_prune_gap_128x6_20k.pt``: HOMO-LUMO gap, 20,000 QM9
molecules, 16,000 / 2,000 / 2,000). Rows, each saved as soon as it is done
(``--work-dir/rows/<row>.{json,pt}``; a rerun skips it):

=================  ===============================================================================
darts_kd_s<k>      DARTS- search (``--search-steps``, weights on one half of the training split,
                   alphas on the other, expected MACs above ``--target-macs`` of the teacher's
                   penalised) with block-wise distillation from the teacher, seed k; then the
                   derived architecture trained from scratch
darts_s<k>         the same search without distillation (the task loss alone), seed k
uniform_s<k>       hand-designed: the teacher's layout (6 blocks, 128 atom basis) with the widest
                   uniform kernel whose MACs stay within ``--target-macs`` of the teacher's
pruned             the teacher's kernels pruned by attention AutoPrune to the same MAC fraction
                   (``chemprune.pipeline.compress_schnet.prune_schnet``), fine-tuned with distillation
=================  ===============================================================================

Every architecture is trained with the same recipe and budget (``--retrain-epochs`` /
``--retrain-minutes``, Adam ``--lr``, plateau schedule, distilled from the teacher: predictions
and, block by block, features; a derived model's blocks are matched to the teacher blocks they
replace); the pruned row gets the same minutes of fine-tuning. At the end every model is
measured in one process: test MAE, parameters, MACs on 64 test molecules, CPU molecules/s at
batch 64 and 1 (``--threads``, interleaved repeats; the load average is recorded), and per
method the seed-to-seed spread of the test MAE. Writes a table, ``--out`` (JSON) and ``--plot``.

    .venv/bin/python benchmarks/qm9_darts.py --work-dir runs/qm9_darts              # hours
    .venv/bin/python benchmarks/qm9_darts.py --quick --out /tmp/d.json --plot /tmp/d.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from harness import (  # noqa: E402
    RowStore,
    error_text,
    header,
    loadavg,
    pyplot,
    save_figure,
    write_results,
)
from qm9_prune import measure_speed, static_stats, timing_batches  # noqa: E402
from qm9_rows import log  # noqa: E402

from chemprune.molecules.checkpoint import load_model, model_checkpoint  # noqa: E402
from chemprune.molecules.data.qm9 import load_dataset  # noqa: E402
from chemprune.molecules.models.schnet import SchNet  # noqa: E402
from chemprune.molecules.schnet.prune_groups import schnet_groups  # noqa: E402
from chemprune.pipeline.compress_schnet import (  # noqa: E402
    prune_schnet,
    shrunk_config,
    sparsity_for_macs,
)
from chemprune.pipeline.prune_settings import PruneSettings  # noqa: E402
from chemprune.pipeline.search_schnet import search_schnet  # noqa: E402
from chemprune.pipeline.search_settings import SearchSettings  # noqa: E402
from chemprune.pipeline.train import TrainSettings, train  # noqa: E402
from chemprune.pipeline.trained import load_trained  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "benchmarks" / "parents" / "qm9_prune_gap_128x6_20k.pt"


def uniform_config(teacher: SchNet, batch, fraction: float) -> tuple[dict[str, Any], float]:
    """The teacher's layout with the widest uniform kernel whose MACs on ``batch`` are at most
    ``fraction`` of the teacher's: the architecture kernel pruning to that fraction leaves
    (:func:`sparsity_for_macs`), so ``uniform`` is the pruned row's architecture from scratch."""
    sp = sparsity_for_macs(teacher, batch, fraction, kind="kernel")
    return shrunk_config(teacher, schnet_groups(teacher, "kernel"), sp), sp


def retrain(name: str, config: dict, blocks, data, split, teacher_path: Path, args, seed: int):
    """Train ``config`` from scratch with the common recipe, distilled from the teacher."""
    target = args.target_name
    settings = TrainSettings(
        target=target, architecture=config, teacher=str(teacher_path), distill="features",
        teacher_blocks=None if blocks is None else tuple(blocks), epochs=args.retrain_epochs,
        lr=args.lr, batch_size=args.batch_size, seed=seed,
    )  # fmt: skip
    out = Path(args.work_dir) / "runs" / name
    summary = train(
        data, split, out, settings=settings, max_minutes=args.retrain_minutes, progress=False,
        log=log, resume=(out / "last.pt").exists(),
    )  # fmt: skip
    model, _ = load_model(summary["best"] or summary["last"])
    return model, {"trained": summary}


def run_row(name: str, teacher: SchNet, teacher_path: Path, data, mset, split, args):
    seed = int(name.rsplit("_s", 1)[1]) if "_s" in name else args.seeds[0]
    macs_batch = mset.collate(split.val[:64])  # the molecules the MAC fractions are set on
    if name.startswith("darts"):
        distill = "features" if name.startswith("darts_kd") else "none"
        settings = SearchSettings(
            engine=args.engine, order=args.order, distill=distill, target_macs=args.target_macs,
            cost_weight=args.cost_weight, steps=args.search_steps, batch_size=args.batch_size,
            lr=args.lr, arch_lr=args.arch_lr, seed=seed,
            warmup_steps=int(args.warmup * args.search_steps),
        )  # fmt: skip
        _, report = search_schnet(teacher, mset, split, settings, progress=False, log=log)
        report.pop("history", None)
        if "config" not in report["derived"]:
            return None, {"search": report, "error": report["derived"]["error"]}
        log(f"{name}: " + ", ".join(b["chosen"] for b in report["blocks"]))
        d = report["derived"]
        model, rep = retrain(
            name, d["config"], d["kept_blocks"], data, split, teacher_path, args, seed
        )
        return model, {"search": report, **rep}
    if name.startswith("uniform"):
        cfg, sp = uniform_config(teacher, macs_batch, args.target_macs)
        model, rep = retrain(name, cfg, None, data, split, teacher_path, args, seed)
        return model, {"config": cfg, "kernel_sparsity": sp, **rep}
    if name == "pruned":
        model = load_model(teacher_path)[0]  # the teacher object itself is frozen by distillation
        sp = sparsity_for_macs(model, macs_batch, args.target_macs, kind="kernel")
        settings = PruneSettings(
            method="attention", sparsity=sp, kind="kernel", finetune_minutes=args.retrain_minutes,
            lr=args.lr, distill="features", seed=args.seeds[0],
        )  # fmt: skip
        rep = prune_schnet(model, mset, split, settings, progress=False, log=log)
        rep.pop("before", None)
        return model, {"sparsity": sp, "prune": rep}
    raise ValueError(f"unknown row {name!r}")


def row_names(args) -> list[str]:
    names = []
    for method in args.methods:
        if method == "pruned":
            names.append("pruned")
        else:
            names += [f"{method}_s{s}" for s in args.seeds]
    return names


def spread(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        if "test_mae" not in r:
            continue
        method = r["row"].rsplit("_s", 1)[0]
        out.setdefault(method, {"maes": []})["maes"].append(r["test_mae"])
    for v in out.values():
        m = v["maes"]
        v["mean"] = statistics.mean(m)
        v["std"] = statistics.stdev(m) if len(m) > 1 else 0.0
        v["range"] = max(m) - min(m)
    return out


def goals(rows: list[dict], stats: dict, args) -> dict[str, Any]:
    g: dict[str, Any] = {}
    kd, plain, uni = (stats.get(k) for k in ("darts_kd", "darts", "uniform"))
    if kd and uni:
        g["darts_kd_mae_vs_uniform"] = kd["mean"] / uni["mean"] - 1
        g["met_5pct_below_uniform"] = g["darts_kd_mae_vs_uniform"] <= -0.05
    if kd and plain and plain["std"] > 0:
        g["spread_ratio_kd_over_plain"] = kd["std"] / plain["std"]
        g["met_spread_halved"] = g["spread_ratio_kd_over_plain"] <= 0.5
    darts_rows = [r for r in rows if r["row"].startswith("darts")]
    g["collapsed_seeds"] = [r["row"] for r in darts_rows if "error" in r]
    g["macs_fractions"] = {r["row"]: r.get("macs_fraction") for r in rows}
    g["met_macs_at_most_30pct"] = all(
        (r.get("macs_fraction") or 1) <= args.target_macs + 1e-9
        for r in darts_rows
        if "error" not in r
    )
    return g


def table(rows: list[dict]) -> str:
    head = f"{'row':<14} {'blocks':<48} {'params':>8} {'MACs':>6} {'test MAE':>9} {'b64/s':>7} {'b1/s':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "test_mae" not in r:
            lines.append(f"{r['row']:<14} {r.get('error', 'failed')}")
            continue
        lines.append(
            f"{r['row']:<14} {r['arch'][:48]:<48} {r['params']:>8,} {r['macs_fraction']:>6.1%} "
            f"{r['test_mae']:>9.4f} {r.get('mol_per_s_b64', 0):>7.0f} {r.get('mol_per_s_b1', 0):>6.0f}"
        )
    return "\n".join(lines)


def describe(model: SchNet) -> str:
    short = {"cfconv": "cf", "linear_filter": "lin", "atomwise": "mlp"}
    return " ".join(
        f"{short[k]}{f}" for k, f in zip(model.block_kinds, model.filter_channels, strict=True)
    )


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method, marker in (
        ("darts_kd", "o"),
        ("darts", "s"),
        ("uniform", "^"),
        ("pruned", "*"),
        ("teacher", "D"),
    ):
        pts = [r for r in rows if r["row"].rsplit("_s", 1)[0] == method and "test_mae" in r]
        if pts:
            ax.scatter([100 * r["macs_fraction"] for r in pts], [r["test_mae"] for r in pts],
                       marker=marker, s=60, label=method)  # fmt: skip
    ax.set_xlabel("MACs, % of the teacher's")
    ax.set_ylabel("test MAE (eV)")
    ax.legend()
    save_figure(fig, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, default=TEACHER)
    p.add_argument("--data-dir", type=Path, default=None, help="qm9pack-format CSVs")
    p.add_argument(
        "--methods", type=lambda s: s.split(","), default=["darts_kd", "darts", "uniform", "pruned"]
    )
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--engine", default="darts_minus")
    p.add_argument("--order", type=int, default=1)
    p.add_argument("--target-macs", type=float, default=0.3)
    p.add_argument("--cost-weight", type=float, default=1.0)
    p.add_argument("--search-steps", type=int, default=2000)
    p.add_argument("--retrain-epochs", type=int, default=20)
    p.add_argument("--retrain-minutes", type=float, default=30.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--arch-lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=float, default=0.3, help="share of the search steps that "
                   "train the weights only")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-mol64", type=int, default=512)
    p.add_argument("--time-mol1", type=int, default=128)
    p.add_argument("--work-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/qm9_darts.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/qm9_darts.png")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run of every path")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.search_steps, args.retrain_epochs = [0, 1], 4, 1
        args.retrain_minutes, args.repeats, args.time_mol64, args.time_mol1 = 0.2, 1, 64, 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.work_dir is None:
            args.work_dir = Path(tmp) / "work"
        teacher_path = args.teacher
        if args.quick:  # a tiny teacher trained here on a 600-molecule subset
            teacher_path = quick_teacher(args, Path(tmp))
        trained = load_trained(teacher_path, args.data_dir)
        teacher, ckpt, data, split, mset = (
            trained.model, trained.ckpt, trained.data, trained.split, trained.mset
        )  # fmt: skip
        args.target_name = trained.target["name"]
        store = RowStore(Path(args.work_dir) / "rows", log=log)  # a failed row is saved too
        store.folder.mkdir(parents=True, exist_ok=True)
        models: dict[str, SchNet] = {"teacher": teacher}
        reports: dict[str, dict] = {"teacher": {"path": str(teacher_path)}}
        for name, saved in store.resume(row_names(args)):
            if saved is not None:
                reports[name] = saved
                if store.model_path(name).exists():
                    models[name] = load_model(store.model_path(name))[0]
                continue
            log(f"{name}: running")
            s0 = time.perf_counter()
            try:
                model, rep = run_row(name, teacher, teacher_path, data, mset, split, args)
            except Exception as err:  # recorded; the run goes on
                model, rep = None, {"error": error_text(err)}
                log(f"{name}: failed: {rep['error']}")
            rep["seconds"] = time.perf_counter() - s0
            checkpoint = None
            if model is not None:
                checkpoint = model_checkpoint(
                    model.cpu(), target=ckpt["target"], data=ckpt.get("data")
                )
                models[name] = model
            store.save(name, rep, model_checkpoint=checkpoint)
            reports[name] = rep
        # measure everything in one process
        t_macs = static_stats(teacher, (mset, mset), split, teacher_path)["macs_per_batch64"]
        rows = []
        names = list(models)
        speeds = measure_speed([models[n] for n in names], timing_batches(mset, split, args), args)
        for n, sp in zip(names, speeds, strict=True):
            m = models[n]
            path = store.model_path(n) if n != "teacher" else teacher_path
            st = static_stats(m, (mset, mset), split, path)
            rows.append(
                {
                    "row": n,
                    "arch": describe(m),
                    "macs_fraction": st["macs_per_batch64"] / t_macs,
                    **st,
                    **sp,
                }
            )
        for n, rep in reports.items():
            if n not in models:
                rows.append({"row": n, "error": rep.get("error", "no model")})
        stats = spread(rows)
        result = {
            **header("qm9_darts", args),
            "load_average": loadavg(),
            "rows": rows,
            "reports": reports,
            "spread": stats,
            "goals": goals(rows, stats, args),
            "seconds": time.time() - t0,
        }
        write_results(args.out, result)
        plot(rows, args.plot)
        print(table(rows))
        print(json.dumps(result["goals"], indent=1))
        print(f"wrote {args.out} and {args.plot}")
    return 0


def quick_teacher(args, tmp: Path) -> Path:
    from chemprune.molecules.data.splits import make_split

    data, _, _ = load_dataset(args.data_dir)
    n = min(len(data), 600)
    split = make_split(len(data), (int(0.6 * n), int(0.2 * n), int(0.2 * n)), 0)
    settings = TrainSettings(target="gap", hidden_channels=16, filter_channels=16, num_interactions=3,
                             num_gaussians=16, epochs=1, batch_size=32)  # fmt: skip
    summary = train(data, split, tmp / "teacher", settings=settings, progress=False, log=log)
    return Path(summary["best"])


if __name__ == "__main__":
    sys.exit(main())
