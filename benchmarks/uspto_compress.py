"""Compression of the USPTO-50k forward model: OLMP grouping strategies, head/FF removal, storage.

For each grouping strategy (global, per transformer layer, per weight type, layer x type) the
script runs ``reaction_nmt.compress`` (OLMP thresholds under ``validation top-1 >= dense -
--max-drop`` points, greedy decoding on the first ``--valid-limit`` validation reactions, with
``--rounds`` rounds of masked retraining in OpenNMT-py's trainer), then reports the sparsity
reached, test top-1 (beam ``--beam``) on the first ``--test-limit`` test reactions, the file size
dense / sparse / sparse-int8 and translation reactions/s. Structured pruning (``--keep-heads``
heads and ``--keep-ff`` feed-forward units per layer, removed for real, retrained) is compared
with the dense model at equal beam (``--skip-structured``: not run). ``--gradual S``: every
retraining round also prunes gradually towards sparsity ``S`` (see
``reaction_nmt.compress.gradual``). Prints a table, writes ``benchmarks/results/
uspto_compress.json`` and ``uspto_compress.png``; records the command, machine and load.

Run (from the repository root; the model is the last checkpoint of ``benchmarks/uspto_forward.py``'s
compact run)::

    .venv/bin/python benchmarks/uspto_compress.py --threads 2            # ~45 min on 2 cores
    .venv/bin/python benchmarks/uspto_compress.py --quick                # smoke run, tiny model
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import loadavg, pyplot, save_figure, write_results  # noqa: E402

from reaction_nmt.compress.olmp import WARM_START  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("global", "layer", "type", "layer_type")


def quick_model(work: Path) -> tuple[Path, Path]:
    """Synthetic reactions and a tiny model trained for a few seconds."""
    from reaction_nmt import synthetic
    from reaction_nmt.backend import checkpoints
    from reaction_nmt.cli import main
    from reaction_nmt.prepare import prepare_corpora

    data = work / "data"
    if not (data / "manifest.json").is_file():
        parts = synthetic.split(synthetic.generate(), seed=0)
        files = {k: synthetic.write_csv(v, work / f"{k}.csv") for k, v in parts.items()}
        prepare_corpora(files, data, fmt="csv")
    run = work / "run_tiny"
    if not checkpoints(run):
        argv = ["train", "--data", str(data), "--out", str(run), "--preset", "tiny",
                "--threads", "1", "-train_steps", "60", "-save_checkpoint_steps", "60",
                "-valid_steps", "1000", "-batch_size", "1024", "-report_every", "20"]  # fmt: skip
        assert main(argv) == 0
    return checkpoints(run)[-1], data


def evaluate(model: Path, args, out_dir: Path) -> dict:
    """Test top-1 and reactions/s through ``reaction-nmt evaluate`` (hooks for shrunk models)."""
    from reaction_nmt.cli import main

    out = out_dir / f"eval_{model.stem}.json"
    argv = ["evaluate", "--model", str(model), "--data", str(args.data), "--split", "test",
            "--beam-size", str(args.beam), "--n-best", str(args.beam), "--max-length",
            str(args.max_length), "--json", str(out), "--out-dir", str(out_dir),
            "--threads", str(args.threads)]  # fmt: skip
    if args.test_limit:
        argv += ["--limit", str(args.test_limit)]
    assert main(argv) == 0
    r = json.loads(out.read_text())
    return {"top1": 100 * r["top_k"]["1"], "top5": 100 * r["top_k"].get("5", 0.0),
            "reactions_per_s": r["translation"]["reactions_per_s"], "n": r["n"]}  # fmt: skip


def sizes(path: Path, work: Path) -> dict:
    from reaction_nmt.compress.storage import load_model, save_model

    ckpt = load_model(path)
    ckpt["optim"] = None
    return {
        s: save_model(ckpt, work / f"size_{s}.pt", s) for s in ("dense", "sparse", "sparse-int8")
    }


def run_one(args, name: str, work: Path, **kw) -> dict:
    from reaction_nmt.compress.pipeline import compress
    from reaction_nmt.compress.storage import load_model, save_model

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "model.pt"
    t0 = time.perf_counter()
    report = compress(
        model=args.model, data_dir=args.data,
        valid=(args.data / "src-valid.txt", args.data / "tgt-valid.txt"), out=out,
        work_dir=folder, metric=args.metric, max_drop=args.max_drop, storage="dense",
        valid_limit=args.valid_limit, beam_size=1, budget=args.budget, rounds=args.rounds,
        warm_start=args.warm_start,
        retrain_steps=args.retrain_steps, retrain_seconds=args.retrain_minutes * 60,
        max_length=args.max_length, seed=args.seed, **kw,
    )  # fmt: skip
    report["wall_s"] = time.perf_counter() - t0
    ckpt = load_model(out)
    save_model(ckpt, out, "dense")
    report["sizes"] = sizes(out, folder)
    report["test"] = evaluate(out, args, folder)
    report["load_average"] = loadavg()
    return report


def table(dense: dict, rows: dict) -> str:
    head = (f"{'model':<12} {'sparsity':>8} {'params':>10} {'val top-1':>9} {'test top-1':>10} "
            f"{'dense MB':>8} {'sparse MB':>9} {'int8 MB':>8} {'rxn/s':>7} {'speedup':>7}")  # fmt: skip
    lines = [head]
    base = dense["test"]["reactions_per_s"]
    s = dense["sizes"]
    lines.append(
        f"{'dense':<12} {0:>8.3f} {dense['parameters']:>10,} {dense['valid']:>9.2f} "
        f"{dense['test']['top1']:>10.2f} {s['dense'] / 1e6:>8.2f} {s['sparse'] / 1e6:>9.2f} "
        f"{s['sparse-int8'] / 1e6:>8.2f} {base:>7.1f} {1:>6.2f}x"
    )
    for name, r in rows.items():
        sp = r["olmp"]["sparsity"] if r.get("olmp") else 0.0
        s = r["sizes"]
        rate = r["test"]["reactions_per_s"]
        lines.append(
            f"{name:<12} {sp:>8.3f} {r['parameters']:>10,} {r['metric']['after']:>9.2f} "
            f"{r['test']['top1']:>10.2f} {s['dense'] / 1e6:>8.2f} {s['sparse'] / 1e6:>9.2f} "
            f"{s['sparse-int8'] / 1e6:>8.2f} {rate:>7.1f} {rate / base:>6.2f}x"
        )
    return "\n".join(lines)


def plot(dense: dict, rows: dict, path: Path) -> None:
    plt = pyplot()
    names = list(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar(names, [100 * (r["olmp"]["sparsity"] if r.get("olmp") else 0) for r in rows.values()])
    a.set(ylabel="weights removed (%)", title="sparsity at <= max drop (validation)")
    b.bar(["dense", *names], [dense["test"]["top1"], *(r["test"]["top1"] for r in rows.values())])
    b.set(ylabel="test top-1 (%)", title="test top-1")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=30)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="default: last checkpoint of the compact run")
    p.add_argument("--data", type=Path, default=REPO / "runs/uspto_forward/data_uspto50k")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--metric", choices=("top1", "seq", "ppl"), default="top1")
    p.add_argument("--max-drop", type=float, default=1.0, help="validation top-1 points")
    p.add_argument("--valid-limit", type=int, default=200)
    p.add_argument("--test-limit", type=int, default=500)
    p.add_argument("--budget", type=int, default=25, help="nevergrad evaluations per search")
    p.add_argument("--warm-start", type=int, default=WARM_START,
                   help="bisection evaluations before each search (0: off)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--retrain-steps", type=int, default=100)
    p.add_argument("--retrain-minutes", type=float, default=2.0, help="budget per round")
    p.add_argument("--gradual", type=float, default=None, metavar="SPARSITY",
                   help="OLMP retraining rounds also prune gradually to this sparsity "
                   "(reaction-nmt compress --gradual)")  # fmt: skip
    p.add_argument("--gradual-ramp", type=float, default=0.75)
    p.add_argument("--skip-structured", action="store_true", help="OLMP strategies only")
    p.add_argument("--keep-heads", type=float, default=0.5)
    p.add_argument("--keep-ff", type=float, default=0.5)
    p.add_argument("--beam", type=int, default=5, help="beam for test top-1 and speed")
    p.add_argument("--max-length", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=REPO / "runs" / "uspto_compress")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default="uspto_compress",
                   help="results file names (NAME.json, NAME.png)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny model on synthetic data, ~3 min")
    args = p.parse_args(argv)
    import torch

    from reaction_nmt.backend import checkpoints, count_parameters

    torch.set_num_threads(args.threads)
    if args.quick:
        args.work = args.work.with_name(args.work.name + "_quick")
        args.results = args.work / "results"
        args.valid_limit, args.test_limit, args.budget = 32, 64, 6
        args.retrain_steps, args.beam, args.max_length = 5, 2, 60
        args.work.mkdir(parents=True, exist_ok=True)
        if args.model is None:
            args.model, args.data = quick_model(args.work)
    if args.model is None:
        found = checkpoints(REPO / "runs/uspto_forward/run_compact")
        if not found:
            raise SystemExit("no --model and no checkpoint in runs/uspto_forward/run_compact")
        args.model = found[-1]
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    from reaction_nmt.compress.evaluate import Evaluator, read_slice

    src = read_slice(args.data / "src-valid.txt", args.valid_limit)
    tgt = read_slice(args.data / "tgt-valid.txt", args.valid_limit)
    dense = {
        "valid": Evaluator(args.model, src, tgt, metric=args.metric, max_length=args.max_length)(),
        "parameters": count_parameters(args.model),
        "sizes": sizes(args.model, args.work),
        "test": evaluate(args.model, args, args.work),
    }
    rows = {}
    gradual = None
    if args.gradual is not None:
        from reaction_nmt.compress.gradual import GradualPruning

        gradual = GradualPruning(args.gradual, ramp=args.gradual_ramp)
    for strategy in [s for s in args.strategies.split(",") if s]:
        print(f"== OLMP, {strategy}", flush=True)
        rows[strategy] = run_one(args, strategy, args.work, strategy=strategy, gradual=gradual)
    if not args.skip_structured:
        print("== structured: heads + FF units", flush=True)
        rows["structured"] = run_one(
            args, "structured", args.work, strategy=None, structured={"heads", "ff"},
            keep={"heads": args.keep_heads, "ff": args.keep_ff},
        )  # fmt: skip
    text = table(dense, rows)
    print(text)
    summary = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "load_average": loadavg(),
        "model": str(args.model),
        "data": str(args.data),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "dense": dense,
        "results": rows,
        "table": text,
        "wall_s": time.perf_counter() - start,
    }
    write_results(args.results / f"{args.name}.json", summary, indent=2)
    plot(dense, rows, args.results / f"{args.name}.png")
    print(f"results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
