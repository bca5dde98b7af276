"""Distilling ``mt`` into ``compact`` on USPTO-50k: distilled vs trained alone, same wall-clock.

The teacher is the last checkpoint of ``runs/uspto_forward/run_mt`` (``benchmarks/
uspto_forward.py``); the baseline is ``compact`` trained alone, ``runs/uspto_forward/run_compact``
from the same script (``--baseline reuse``), or trained here side by side with the students
(``--baseline train``; ``auto``: reuse when the run has checkpoints). Students are ``compact``
trained through ``reaction-nmt distill`` for the baseline's minutes (read from
``benchmarks/results/uspto_forward.json`` when present, with its warm-up, validation
and thread options), word-level (soft targets, ``--temperature``, ``--alpha``; the teacher's
forward passes count in the budget, its logits are cached per example so that later epochs skip
it, unless ``--no-cache-teacher``) and, with ``--modes word sequence``, sequence-level (the
teacher's beam outputs as targets; the teacher's translation of the 40k training sources is not
counted in the budget and takes hours on a CPU). The fairest comparison trains the baseline
here, side by side with the student under the same machine load (``--baseline train --parallel
--threads 1`` on 2 cores); a reused baseline ran beside ``mt`` in ``uspto_forward.py``. Every model,
the teacher included, is scored with ``reaction-nmt evaluate`` on the test split with the same
beam, length and ``--eval-limit`` (scores ``uspto_forward.py`` already has for the same
checkpoint and settings are reused). The script prints a table and writes
``benchmarks/results/<--name>.{json,png}`` (default ``uspto_distill``) with the command, machine
and load averages. Each student is also compared with the baseline reaction by reaction on the
same test reactions (who gets which right, exact McNemar p-value); ``--pool NAME,...`` prints
saved runs (e.g. one per ``-seed``, given with ``--train-options``) as one study with the mean
top-1 gain and its standard error. ``--teacher`` takes any checkpoint trained on the same
prepared data (the student uses its vocabulary), e.g. a ``compact`` model trained for longer
than the budget, or an ``mt`` model trained on other prepared data such as the synthetic
reactions (``reaction-nmt synth`` + ``prepare --format csv``; README).

Run (from the repository root, after ``uspto_forward.py``)::

    .venv/bin/python benchmarks/uspto_distill.py                        # word level, ~1.5 h
    .venv/bin/python benchmarks/uspto_distill.py --baseline train --parallel --threads 1
    .venv/bin/python benchmarks/uspto_distill.py --quick                # synthetic data, ~3 min
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import loadavg, pyplot, save_figure, write_results  # noqa: E402
from reaction_jobs import Job, validation_view  # noqa: E402

from chemprune.common.atomic import atomic_write_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FORWARD = REPO / "runs" / "uspto_forward"


def quick_setup(work: Path, threads: int) -> tuple[Path, Path]:
    """Synthetic reactions and a ``tiny`` teacher trained for 40 s (smoke runs only)."""
    from reaction_nmt import synthetic
    from reaction_nmt.prepare import prepare_corpora

    data = work / "data"
    if not (data / "manifest.json").is_file():
        parts = synthetic.split(synthetic.generate(), seed=0)
        files = {k: synthetic.write_csv(v, work / "raw" / f"{k}.csv") for k, v in parts.items()}
        prepare_corpora(files, data, fmt="csv")
    teacher = work / "teacher"
    if not any(teacher.glob("model_step_*.pt")):
        Job(
            "train", "--data", str(data), "--out", str(teacher), "--preset", "tiny",
            "--max-minutes", "0.7", "--threads", str(threads), "-batch_size", "1024",
            "-valid_steps", "1000", "-save_checkpoint_steps", "1000",
            threads=threads, log=work / "teacher.log",
        ).wait()  # fmt: skip
    return data, teacher


def train_settings(args) -> dict:
    """Budget and options of the baseline run (``uspto_forward.json``), unless given."""
    found = {}
    if args.forward_results.is_file() and not args.quick:
        found = json.loads(args.forward_results.read_text())
    minutes = args.minutes or found.get("minutes_per_model") or 60.0
    warmup = args.warmup if args.warmup is not None else found.get("warmup_override")
    extra = ["-valid_steps", str(args.valid_steps), "-save_checkpoint_steps", "1000"]
    if warmup is not None:
        extra += ["-warmup_steps", str(warmup)]
    if args.quick:
        minutes = args.minutes or 0.3
        extra = ["-batch_size", "1024", "-valid_steps", "5", "-save_checkpoint_steps", "1000",
                 "-report_every", "5", "-warmup_steps", "100"]  # fmt: skip
    extra += shlex.split(args.train_options)  # given last, so they win
    if args.threads is None:
        args.threads = found.get("threads", 2) if args.baseline != "train" else 2
    return {"minutes": minutes, "extra": extra, "forward_results": found or None}


def start(args, name: str, teacher: Path, data: Path, settings: dict) -> Job:
    run = args.work / f"run_{name}"
    common = ["--data", str(data), "--out", str(run), "--max-minutes", str(settings["minutes"])]
    common += ["--threads", str(args.threads), *settings["extra"]]
    preset = ["--preset", args.preset]
    log = args.work / f"train_{name}.log"
    if name == "baseline":
        return Job("train", *preset, *common, threads=args.threads, log=log)
    mode = name.split("_", 1)[1]
    opts = ["--teacher", str(teacher), "--mode", mode, *preset]
    if mode == "word":
        opts += ["--temperature", str(args.temperature), "--alpha", str(args.alpha)]
        opts += [] if args.no_cache_teacher else ["--cache-teacher"]
    else:
        opts += ["--beam-size", str(args.seq_beam), "--max-length", str(args.max_length)]
    return Job("distill", *opts, *common, threads=args.threads, log=log)


def earlier_eval(args, model: Path, data: Path, forward: dict | None) -> dict | None:
    """The USPTO-50k test score ``uspto_forward.py`` already computed for this checkpoint with
    the same beam and number of reactions (its maximum length is the default 300)."""
    if not forward or args.max_length != 300:
        return None
    n_test = sum(1 for _ in open(data / "tgt-test.txt"))
    n = min(args.eval_limit or n_test, n_test)
    for r in forward.get("results", []):
        e = r.get("eval", {}).get("uspto50k_test")
        if r.get("checkpoint") == str(model) and e and e.get("n") == n:
            if e.get("translation", {}).get("beam_size") == args.beam_size:
                return {**e, "reused_from": str(args.forward_results)}
    return None


def evaluate(args, name: str, model: Path, data: Path, wall: float | None, forward) -> dict:
    from reaction_nmt.backend import count_parameters
    from reaction_nmt.trainlog import read_train_log

    out = args.work / f"eval_{name}.json"
    beam = ["--beam-size", str(args.beam_size), "--n-best", str(args.beam_size)]
    beam += ["--max-length", str(args.max_length), "--threads", str(args.threads)]
    limit = ["--limit", str(args.eval_limit)] if args.eval_limit else []
    earlier = earlier_eval(args, model, data, forward)
    if earlier is not None:
        print(f"{name}: reusing the test score in {args.forward_results}", flush=True)
        atomic_write_text(out, json.dumps(earlier, indent=2) + "\n")
    else:
        Job(
            "evaluate", "--model", str(model), "--data", str(data), "--split", "test",
            "--json", str(out), "--out-dir", str(args.work / f"pred_{name}"), *beam, *limit,
            threads=args.threads, log=args.work / f"eval_{name}.log",
        ).wait()  # fmt: skip
    log = model.parent / "train.log"
    curves = read_train_log(log) if log.is_file() else {"train": [], "valid": []}
    toks = [r["src_tok_s"] + r["tgt_tok_s"] for r in curves["train"][1:]]
    info_file = model.parent / "reaction_nmt.json"
    return {
        "name": name,
        "checkpoint": str(model),
        "parameters": count_parameters(model),
        "steps": int(model.stem.rsplit("_", 1)[1]),
        "train_wall_s": wall,
        "train_tokens_per_s": sum(toks) / len(toks) if toks else None,
        "run_info": json.loads(info_file.read_text()) if info_file.is_file() else None,
        "curves": curves,
        "eval": json.loads(out.read_text()),
        "load_average_after": loadavg(),
    }


def ranked_predictions(evaluation: dict) -> tuple[list[str], list[list[str]]]:
    """Targets and ranked predictions (SMILES) of one ``reaction-nmt evaluate`` result."""
    from reaction_nmt.scoring import read_nbest
    from reaction_nmt.tokenize import detokenize

    n_best = evaluation.get("translation", {}).get("n_best") or evaluation["n_best"]
    targets = [detokenize(line) for line in open(evaluation["targets"]) if line.strip()]
    groups = read_nbest(evaluation["predictions"], n_best)
    return targets, [[detokenize(p) for p in g] for g in groups]


def paired_vs_baseline(results: list[dict]) -> dict[str, dict]:
    """Each student's top-1 against the baseline's, reaction by reaction on the same test
    reactions (``reaction_nmt.scoring.paired_top1``: who gets which right, exact McNemar)."""
    from reaction_nmt.scoring import paired_top1

    base = next(r for r in results if r["name"] == "baseline")
    targets, base_preds = ranked_predictions(base["eval"])
    out = {}
    for r in results:
        if r["name"].startswith("distill_"):
            t, preds = ranked_predictions(r["eval"])
            if t != targets:
                raise SystemExit(f"{r['name']} was scored on other targets than the baseline")
            out[r["name"]] = paired_top1(targets, preds, base_preds)
    return out


def paired_line(name: str, p: dict) -> str:
    return (
        f"{name}: top-1 {100 * p['difference']:+.2f} points vs trained alone; right only with "
        f"distillation {p['only_a']}, only alone {p['only_b']} of {p['n']} (McNemar p = "
        f"{p['p_value']:.3f})"
    )


def pool_runs(args) -> int:
    """Saved runs of this benchmark (``--pool NAME,...``, e.g. one per seed) as one study: the
    per-run top-1 gains, their mean and standard error. Trains nothing."""
    import statistics

    runs = []
    for name in args.pool.split(","):
        path = args.results / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"--pool: {path} does not exist")
        summary = json.loads(path.read_text())
        paired = summary.get("paired_vs_baseline") or paired_vs_baseline(summary["results"])
        runs.append((name, summary, paired))
    modes = sorted({m for _, _, paired in runs for m in paired})
    pooled = {}
    for mode in modes:
        rows = [(n, s, p[mode]) for n, s, p in runs if mode in p]
        print(f"{mode}: {len(rows)} runs")
        print(f"{'run':<24} {'alone':>7} {'distilled':>9} {'gain':>7} {'only KD':>8} "
              f"{'only alone':>10} {'p':>7}")  # fmt: skip
        gains = []
        for n, s, p in rows:
            base = next(r for r in s["results"] if r["name"] == "baseline")
            top1 = base["eval"]["top_k"]["1"]
            gains.append(100 * p["difference"])
            print(f"{n:<24} {100 * top1:6.2f}% {100 * (top1 + p['difference']):8.2f}% "
                  f"{gains[-1]:+6.2f} {p['only_a']:>8} {p['only_b']:>10} {p['p_value']:7.3f}")  # fmt: skip
        se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
        mean = statistics.fmean(gains)
        print(f"mean gain {mean:+.2f} +- {se:.2f} points (s.e. over {len(gains)} runs)")
        pooled[mode] = {"runs": [n for n, _, _ in rows], "gains_points": gains,
                        "paired": [p for _, _, p in rows], "mean_gain_points": mean,
                        "standard_error_points": se}  # fmt: skip
    out = args.results / f"{args.name}_pooled.json"
    summary = {"command": " ".join([sys.executable, *sys.argv]), "pooled": pooled}
    write_results(out, summary, indent=2)
    print(f"written {out}")
    return 0


def table(results: list[dict]) -> str:
    rows = [f"{'model':<16} {'params':>10} {'steps':>7} {'top-1':>7} {'top-5':>7} {'invalid@1':>9}"]
    for r in results:
        e = r["eval"]
        rows.append(
            f"{r['name']:<16} {r['parameters']:>10,} {r['steps']:>7} "
            f"{100 * e['top_k']['1']:>6.2f}% {100 * e['top_k']['5']:>6.2f}% "
            f"{100 * e['invalid_top1']:>8.2f}%"
        )
    return "\n".join(rows)


def plot(results: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["name"] for r in results]
    x = range(len(results))
    a.bar(
        [i - 0.2 for i in x], [100 * r["eval"]["top_k"]["1"] for r in results], 0.4, label="top-1"
    )
    a.bar(
        [i + 0.2 for i in x], [100 * r["eval"]["top_k"]["5"] for r in results], 0.4, label="top-5"
    )
    a.set_xticks(list(x), names, rotation=15)
    a.set(ylabel="test accuracy (%)", title=title)
    a.legend()
    for r in results:
        v = r["curves"]["valid"]
        if v and r["name"] != "teacher":
            b.plot(
                [p["seconds"] / 60 for p in v],
                [p.get("accuracy") for p in v],
                "o-",
                label=r["name"],
            )
    b.set(xlabel="training minutes", ylabel="validation token accuracy (%)")
    b.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, default=FORWARD / "run_mt", help="checkpoint or run")
    p.add_argument("--data", type=Path, default=FORWARD / "data_uspto50k", help="prepared data")
    p.add_argument("--baseline-run", type=Path, default=FORWARD / "run_compact")
    p.add_argument("--baseline", choices=("auto", "reuse", "train"), default="auto")
    p.add_argument(
        "--forward-results", type=Path, default=REPO / "benchmarks/results/uspto_forward.json"
    )
    p.add_argument("--preset", default="compact", help="student preset")
    p.add_argument("--modes", nargs="+", choices=("word", "sequence"), default=["word"])
    p.add_argument("--minutes", type=float, help="training budget (default: the baseline's)")
    p.add_argument("--warmup", type=int, help="noam warm-up steps (default: the baseline's)")
    p.add_argument(
        "--train-options", default="", metavar="'-OPTION VALUE ...'",
        help="OpenNMT-py options for every trained run, student and baseline alike (e.g. "
        "\"-batch_size 2048 -seed 1\"); they override the defaults above",
    )  # fmt: skip
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument(
        "--no-cache-teacher", action="store_true",
        help="run the teacher on every batch (default: its logits are cached per example, so "
        "only the first epoch pays for it)",
    )  # fmt: skip
    p.add_argument("--seq-beam", type=int, default=5, help="teacher beam (sequence level)")
    p.add_argument(
        "--threads", type=int, default=None,
        help="threads per job (default: the reused baseline's, else 2)",
    )  # fmt: skip
    p.add_argument("--parallel", action="store_true", help="train the jobs side by side")
    p.add_argument("--valid-slice", type=int, default=1000)
    p.add_argument("--valid-steps", type=int, default=500)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--max-length", type=int, default=300)
    p.add_argument("--eval-limit", type=int, default=None, help="score only the first N")
    p.add_argument("--no-teacher-eval", action="store_true", help="do not score the teacher")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "uspto_distill")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--quick", action="store_true", help="synthetic data, tiny teacher, 0.3 min")
    p.add_argument("--name", default="uspto_distill", help="results file stem")
    p.add_argument(
        "--pool", metavar="NAME,NAME,...",
        help="print saved results (e.g. one per seed) as one study, with the mean top-1 gain "
        "and its standard error, into <--name>_pooled.json; trains nothing",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.pool:
        return pool_runs(args)
    load_start = loadavg()
    if args.quick:
        args.work = args.work.with_name(args.work.name + "_quick")
        args.results = args.work / "results"
        args.max_length, args.eval_limit, args.preset = 60, args.eval_limit or 60, "tiny"
        args.baseline, args.seq_beam, args.beam_size = "train", 2, 3
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.threads = args.threads or 1
        args.data, args.teacher = quick_setup(args.work, args.threads)
    from reaction_nmt.backend import checkpoints
    from reaction_nmt.distill import resolve_checkpoint

    teacher = resolve_checkpoint(args.teacher)
    if not (args.data / "manifest.json").is_file():
        raise SystemExit(f"{args.data} is not a prepared data folder (run uspto_forward.py)")
    settings = train_settings(args)
    data = args.data if args.quick else validation_view(args.data, args.valid_slice)
    reuse = args.baseline == "reuse" or (
        args.baseline == "auto" and bool(checkpoints(args.baseline_run))
    )
    if reuse and not checkpoints(args.baseline_run):
        raise SystemExit(f"--baseline reuse: {args.baseline_run} has no checkpoints")
    names = ([] if reuse else ["baseline"]) + [f"distill_{m}" for m in args.modes]
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.parallel:
        jobs = {n: start(args, n, teacher, data, settings) for n in names}
        for n, job in jobs.items():
            job.wait()
            walls[n] = time.perf_counter() - t0
    else:
        for n in names:
            t = time.perf_counter()
            start(args, n, teacher, data, settings).wait()
            walls[n] = time.perf_counter() - t
    models = {n: checkpoints(args.work / f"run_{n}")[-1] for n in names}
    if reuse:
        models = {"baseline": checkpoints(args.baseline_run)[-1], **models}
    if not args.no_teacher_eval:
        models = {"teacher": teacher, **models}
    workers = 2 if args.parallel else 1
    forward = settings["forward_results"]
    if args.forward_results.is_file() and not args.quick:  # it may have finished meanwhile
        forward = json.loads(args.forward_results.read_text())
    with ThreadPoolExecutor(workers) as pool:
        results = list(
            pool.map(
                lambda n: evaluate(args, n, models[n], args.data, walls.get(n), forward),
                models,
            )
        )
    print(table(results))
    paired = paired_vs_baseline(results)
    gains = {n: p["difference"] for n, p in paired.items()}
    for n, p in paired.items():
        print(paired_line(n, p))
    summary = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_start": load_start,
        "load_average_end": loadavg(),
        "teacher": str(teacher),
        "data": str(args.data),
        "baseline": "reused " + str(args.baseline_run) if reuse else "trained here",
        "minutes_per_model": settings["minutes"],
        "train_options": settings["extra"],
        "threads": args.threads,
        "parallel": args.parallel,
        "temperature": args.temperature,
        "alpha": args.alpha,
        "cache_teacher": not args.no_cache_teacher,
        "eval": {
            "beam_size": args.beam_size,
            "max_length": args.max_length,
            "limit": args.eval_limit,
        },
        "quick": args.quick,
        "top1_gain_vs_baseline": gains,
        "paired_vs_baseline": paired,
        "results": results,
    }
    write_results(args.results / f"{args.name}.json", summary, indent=2)
    plot(results, args.results / f"{args.name}.png", f"test split of {args.data.name}")
    print(f"results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
