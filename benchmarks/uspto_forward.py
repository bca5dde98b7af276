"""Forward reaction prediction on USPTO-50k (Liu split): ``compact`` vs ``mt`` at equal wall-clock.

For each preset the script trains with OpenNMT-py (through ``reaction-nmt train``, one process
per model, ``--max-minutes`` the same for both), then scores the last checkpoint with beam 5 on
the USPTO-50k test split and on the USPTO-15k test file (top-1/2/3/5 by canonical exact match,
invalid-SMILES rate), and reports parameters, training tokens/s (source + target tokens per
second from OpenNMT-py's log) and translation reactions/s. It prints a table and writes
``benchmarks/results/uspto_forward.json`` and ``uspto_forward.png`` (learning curves: validation
token accuracy and training perplexity against wall-clock seconds).

Data (never copied into the repository): ``--uspto50k`` is the folder with
``liu_split_smi/retrosynthesis-{train,valid,test}.smi.gz`` (read as PRODUCT >> REACTANTS and
turned into the forward direction), ``--uspto15k`` the folder with ``test.txt.gz`` (atom-mapped
``reactants>>product edits``). Both default to ``../shared/datasets`` beside the repository.
Inputs are "mixed" (USPTO-50k has no reagents).

Run (from the repository root)::

    .venv/bin/python benchmarks/uspto_forward.py --parallel --threads 1 --minutes 60 --warmup 1000
                                        # both presets side by side (the README's run, ~1 h 50 min)
    .venv/bin/python benchmarks/uspto_forward.py --minutes 60 --threads 2   # one after the other
    .venv/bin/python benchmarks/uspto_forward.py --quick                     # smoke run, ~2 min

Full-scale recipe (GPU, not run here): USPTO-MIT from Jin et al. (``reaction-nmt prepare
--format mapped --download --data data/uspto_mit --out data/mit_sep --mode separated
--augment 1``; ``--mode mixed`` for the mixed task), then ``reaction-nmt train --preset mt
--data data/mit_sep --out runs/mit_sep -world_size 1 -gpu_ranks [0] -train_steps 500000``,
``reaction-nmt average --run runs/mit_sep --last 20 --out runs/mit_sep/avg.pt`` and
``reaction-nmt evaluate --model runs/mit_sep/avg.pt --data data/mit_sep --split test``.
Published reference (Schwaller et al., ACS Cent. Sci. 2019, Molecular Transformer, USPTO-MIT
test): 90.4% top-1 separated, 88.6% top-1 mixed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import loadavg, pyplot, save_figure, write_results  # noqa: E402
from reaction_jobs import Job, head_lines, validation_view  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def _cli(*args: str, threads: int, log: Path) -> None:
    Job(*args, threads=threads, log=log).wait()


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    liu = args.uspto50k / "liu_split_smi"
    test15 = args.uspto15k / "test.txt.gz"
    d50, d15 = work / "data_uspto50k", work / "data_uspto15k"
    if args.quick:
        raw = work / "raw"
        files = {
            s: head_lines(liu / f"retrosynthesis-{s}.smi.gz", raw / f"{s}.smi", n)
            for s, n in (("train", 400), ("valid", 40), ("test", 40))
        }
        test15 = head_lines(test15, raw / "test15k.txt", 40)
    else:
        files = {s: liu / f"retrosynthesis-{s}.smi.gz" for s in ("train", "valid", "test")}
    if not (d50 / "manifest.json").is_file() or args.quick:
        _cli(
            "prepare", "--format", "liu-smi", "--out", str(d50),
            *(x for s, p in files.items() for x in (f"--{s}", str(p))),
            threads=args.threads, log=work / "cli.log",
        )  # fmt: skip
    if not (d15 / "manifest.json").is_file() or args.quick:
        _cli(
            "prepare", "--format", "mapped", "--test", str(test15), "--out", str(d15),
            threads=args.threads, log=work / "cli.log",
        )  # fmt: skip
    return d50, d15


def start_training(args, preset: str, d50: Path, work: Path) -> Job:
    d50 = validation_view(d50, args.valid_slice)
    run = work / f"run_{preset}"
    extra = ["-valid_steps", str(args.valid_steps), "-save_checkpoint_steps", "1000"]
    if args.warmup is not None:
        extra += ["-warmup_steps", str(args.warmup)]
    if args.quick:
        extra = ["-batch_size", "1024", "-valid_steps", "2", "-save_checkpoint_steps", "2",
                 "-report_every", "2", "-warmup_steps", "100"]  # fmt: skip
    return Job(
        "train", "--data", str(d50), "--out", str(run), "--preset", preset,
        "--max-minutes", str(args.minutes), "--threads", str(args.threads), *extra,
        threads=args.threads, log=work / f"train_{preset}.log",
    )  # fmt: skip


def evaluate_preset(args, preset: str, train_wall: float, d50: Path, d15: Path, work: Path):
    from reaction_nmt.backend import checkpoints, count_parameters
    from reaction_nmt.trainlog import read_train_log

    run = work / f"run_{preset}"
    model = checkpoints(run)[-1]
    curves = read_train_log(run / "train.log")
    toks = [r["src_tok_s"] + r["tgt_tok_s"] for r in curves["train"][1:]] or [
        r["src_tok_s"] + r["tgt_tok_s"] for r in curves["train"]
    ]
    result = {
        "preset": preset,
        "parameters": count_parameters(model),
        "checkpoint": str(model),
        "steps": int(model.stem.rsplit("_", 1)[1]),
        "train_wall_s": train_wall if train_wall is not None else curves["train"][-1]["seconds"],
        "train_tokens_per_s": sum(toks) / len(toks) if toks else None,
        "curves": curves,
        "eval": {},
        "load_average_after_training": loadavg(),
    }
    beam = ["--beam-size", "5", "--n-best", "5", "--threads", str(args.threads)]
    beam += ["--max-length", str(args.max_length)]
    for name, data in (("uspto50k_test", d50), ("uspto15k_test", d15)):
        out = work / f"eval_{preset}_{name}.json"
        limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
        _cli(
            "evaluate", "--model", str(model), "--data", str(data), "--split", "test",
            "--json", str(out), "--out-dir", str(run / name), *beam, *limit,
            threads=args.threads, log=work / f"eval_{preset}.log",
        )  # fmt: skip
        result["eval"][name] = json.loads(out.read_text())
    return result


def table(results: list[dict]) -> str:
    head = (
        f"{'preset':<8} {'params':>10} {'steps':>7} {'train tok/s':>11} "
        f"{'50k top-1':>9} {'50k top-5':>9} {'15k top-1':>9} {'15k top-5':>9} {'rxn/s':>7}"
    )
    rows = [head]
    for r in results:
        e50, e15 = r["eval"]["uspto50k_test"], r["eval"]["uspto15k_test"]
        rows.append(
            f"{r['preset']:<8} {r['parameters']:>10,} {r['steps']:>7} "
            f"{r['train_tokens_per_s'] or 0:>11.0f} "
            f"{100 * e50['top_k']['1']:>8.2f}% {100 * e50['top_k']['5']:>8.2f}% "
            f"{100 * e15['top_k']['1']:>8.2f}% {100 * e15['top_k']['5']:>8.2f}% "
            f"{e50['translation']['reactions_per_s']:>7.1f}"
        )
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for r in results:
        v, t = r["curves"]["valid"], r["curves"]["train"]
        label = f"{r['preset']} ({r['parameters'] / 1e6:.1f}M)"
        a.plot([x["seconds"] / 60 for x in v], [x.get("accuracy") for x in v], "o-", label=label)
        b.plot([x["seconds"] / 60 for x in t], [x["ppl"] for x in t], label=label)
    a.set(xlabel="training minutes", ylabel="validation token accuracy (%)", title="USPTO-50k")
    b.set(xlabel="training minutes", ylabel="training perplexity", yscale="log")
    a.legend()
    b.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--uspto50k", type=Path, default=DATASETS / "uspto_50k")
    p.add_argument("--uspto15k", type=Path, default=DATASETS / "uspto_15k")
    p.add_argument("--presets", nargs="+", default=["compact", "mt"])
    p.add_argument("--minutes", type=float, default=60.0, help="training budget per model")
    p.add_argument("--threads", type=int, default=2, help="threads per model")
    p.add_argument(
        "--parallel", action="store_true",
        help="train the presets at the same time (use --threads 1 on 2 cores), so both see "
        "the same machine load",
    )  # fmt: skip
    p.add_argument(
        "--valid-slice", type=int, default=1000,
        help="validate during training on the first N validation reactions (0: all)",
    )  # fmt: skip
    p.add_argument("--eval-only", action="store_true", help="score the runs in --work again")
    p.add_argument("--warmup", type=int, help="override the presets' noam warm-up steps")
    p.add_argument("--valid-steps", type=int, default=500)
    p.add_argument("--max-length", type=int, default=300, help="longest prediction (tokens)")
    p.add_argument("--eval-limit", type=int, default=None, help="score only the first N")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "uspto_forward")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--quick", action="store_true", help="tiny slice, 0.3 min per model")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.work = 0.3, args.work.with_name(args.work.name + "_quick")
        args.max_length = 60
        args.results = args.work / "results"
    for folder in (args.uspto50k / "liu_split_smi", args.uspto15k):
        if not folder.is_dir():
            raise SystemExit(f"data folder {folder} does not exist (see --uspto50k/--uspto15k)")
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    d50, d15 = prepare(args, args.work)
    walls: dict = dict.fromkeys(args.presets)  # --eval-only: from the training logs
    if args.parallel and not args.eval_only:  # side by side: the same load for every preset
        t0 = time.perf_counter()
        jobs = {preset: start_training(args, preset, d50, args.work) for preset in args.presets}
        for preset, job in jobs.items():
            job.wait()
            walls[preset] = time.perf_counter() - t0
    if args.parallel or args.eval_only:
        with ThreadPoolExecutor(len(args.presets)) as pool:  # evaluations side by side too
            results = list(
                pool.map(
                    lambda p: evaluate_preset(args, p, walls[p], d50, d15, args.work),
                    args.presets,
                )
            )
    else:
        results = []
        for preset in args.presets:
            t0 = time.perf_counter()
            start_training(args, preset, d50, args.work).wait()
            walls[preset] = time.perf_counter() - t0
            results.append(evaluate_preset(args, preset, walls[preset], d50, d15, args.work))
    print(table(results))
    summary = {
        "command": " ".join(sys.argv),
        "minutes_per_model": args.minutes,
        "threads": args.threads,
        "parallel": args.parallel,
        "warmup_override": args.warmup,
        "valid_slice": args.valid_slice,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "quick": args.quick,
        "results": results,
    }
    write_results(args.results / "uspto_forward.json", summary, indent=2)
    plot(results, args.results / "uspto_forward.png")
    print(f"results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
