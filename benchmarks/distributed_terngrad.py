"""Distributed SchNet training on QM9 with compressed gradients: bytes, step time, accuracy.

Every run is the real command ``chemprune train --nproc W --comm-hook H`` (torchrun, gloo over
TCP on this machine) on the same QM9 subset (``--subset``, split 80/10/10, seed 0), model
(hidden 64, 64 filters, 3 interactions, 68,033 parameters) and number of epochs. Runs:

* W = 2 and 4 processes x hooks ``allreduce`` (DDP's fp32 all-reduce), ``fp16``, ``powersgd``
  (PyTorch's built-ins) and ``terngrad``; global batch 32;
* longer runs (``--long-epochs``, default 20): W = 2, ``allreduce`` and ``terngrad``, batch 32.
  TernGrad's ternary gradients are unbiased but noisier, and Wen et al. (2017) report that it
  reaches fp32 accuracy given enough iterations; both get the same epochs, and since the
  learning-rate schedule does not depend on the number of epochs, epoch 6 of these runs is the
  6-epoch run (``val_curve`` holds every epoch);
* TernGrad with the authors' exceptions (``--terngrad-min-size 100``: parameters with fewer
  than 100 values, i.e. the biases, and ``--terngrad-fp32 'lin2.*'``: the output layer, in
  float32): W = 2 and 4 for ``--epochs``, W = 2 for ``--long-epochs``;
* large batch: W = 2, fp32 all-reduce, global batch 128 (4x), without and with SmoothOut
  (adaptive and uniform, amplitude ``--smoothout``), at ``--lr`` and at ``--big-lr`` (4e-3:
  the learning rate scaled linearly with the batch); within each learning rate the fp32
  and SmoothOut runs share every setting but the noise.
* ``--rows converge`` (run on its own, saved under ``"converge"``): the accuracy questions again
  with less noise and more training: seeds 0, 1, 2 (each its own split, initialisation and
  batch order), ``--converge-subset`` 4,000 molecules (400 for validation), 25 epochs, W = 2:
  fp32 and TernGrad at batch 32, fp32 and adaptive SmoothOut (``--converge-smoothout``) at
  batch 128; each configuration's MAE is compared with fp32 at batch 32 of the same seed.

Measured, from each run's ``history.jsonl`` (rank 0):

* bytes sent per step: the increase of this process's ``wchar`` in ``/proc/self/io`` across each
  training step (forward, backward with the hook's collectives, the step's 1-flag agreement
  all-reduce, optimizer step), i.e. the bytes gloo actually handed to the kernel's
  write/writev calls on its TCP sockets, headers included (no checkpoint or log is written
  inside that window; the progress bar is off). Not computed from tensor sizes;
* step time: mean wall time of those steps (2 CPU cores: 4 processes share them);
* validation MAE (eV, HOMO-LUMO gap) after the last epoch, and the best over the epochs (the
  epoch of ``best.pt``): one epoch to the next it moves by up to ~15% here.

Run (from the repository root; ~10 minutes on 2 cores)::

    .venv/bin/python benchmarks/distributed_terngrad.py
    .venv/bin/python benchmarks/distributed_terngrad.py --quick   # smoke run
    .venv/bin/python benchmarks/distributed_terngrad.py --rows terngrad-fp32   # only those rows,
                                                  # merged into the saved results (~5 min)
    .venv/bin/python benchmarks/distributed_terngrad.py --rows converge   # ~25 min
    .venv/bin/python benchmarks/distributed_terngrad.py --rows converge --optimizer sgd \
        --lr 0.01 --converge-no-big --converge-key converge_sgd   # the same with momentum SGD
    .venv/bin/python benchmarks/distributed_terngrad.py --rows converge --lr-schedule cosine \
        --converge-key converge_cosine   # every run annealed to lr 1e-6 by a cosine
    .venv/bin/python benchmarks/distributed_terngrad.py --rows converge --optimizer sgd \
        --lr 0.02 --lr-schedule cosine --warmup-steps 300 --max-grad-norm 5 --converge-no-big \
        --converge-key converge_sgd_cosine_clip   # TernGrad within 5% of fp32 (README)
    .venv/bin/python benchmarks/distributed_terngrad.py --pool converge_smoothout_schedules,\
converge_smoothout_confirm   # two saved studies (other seeds) as one; runs nothing

A run whose loss becomes NaN is recorded as diverged (NaN MAE) and the study goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import pyplot, save_figure, write_results

from chemprune.engines.distributed.smoothout import SMOOTHOUT_SCHEDULES
from chemprune.pipeline.optim import LR_SCHEDULES, OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOOKS = ("allreduce", "fp16", "powersgd", "terngrad")
TERN_FP32 = ("--terngrad-min-size", "100", "--terngrad-fp32", "lin2.*")
BIG_LR = (
    4e-3  # large-batch learning rate: 4 x 1e-3 (linear scaling with the batch, Goyal et al. 2017)
)


def run(
    out: Path,
    *,
    nproc: int,
    hook: str,
    batch: int,
    args: argparse.Namespace,
    extra=(),
    epochs: int | None = None,
    lr: float | None = None,
    warmup: int | None = None,
    seed: int = 0,
    subset: int | None = None,
) -> dict:
    epochs = args.epochs if epochs is None else epochs
    lr = args.lr if lr is None else lr
    subset = args.subset if subset is None else subset
    cmd = [sys.executable, "-m", "chemprune", "train", "--target", "gap", "--seed", str(seed)]
    cmd += ["--subset", str(subset), "--epochs", str(epochs), "--lr", str(lr)]
    cmd += ["--hidden", "64", "--filters", "64", "--interactions", "3", "--threads", "1"]
    cmd += ["--batch-size", str(batch), "--nproc", str(nproc), "--comm-hook", hook]
    cmd += ["--optimizer", args.optimizer, "--lr-schedule", args.lr_schedule]
    warmup = args.warmup_steps if warmup is None else warmup
    cmd += ["--warmup-steps", str(warmup)] if warmup else []
    cmd += ["--max-grad-norm", str(args.max_grad_norm)] if args.max_grad_norm else []
    cmd += ["--checkpoint-every", "0", "--no-progress", "--out", str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    diverged = done.returncode != 0 and "loss became" in done.stderr
    if done.returncode != 0 and not diverged:
        sys.exit(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    hist = out / "history.jsonl"
    rows = [json.loads(line) for line in hist.read_text().splitlines()] if hist.is_file() else []
    if diverged:  # recorded as such (NaN MAE), not fatal to the study
        print(f"diverged (loss became NaN): {' '.join(cmd)}", flush=True)
    nan = {"val_mae": math.nan, "train_mae": math.nan, "step_s": math.nan,
           "sent_bytes_per_step": math.nan}  # fmt: skip
    epochs_done = len(rows)
    rows = rows or [nan]
    later = rows[1:] or rows  # the first epoch includes warm-up
    return {
        "processes": nproc,
        "hook": hook,
        "batch": batch,
        "lr": lr,
        "seed": seed,
        "subset": subset,
        "optimizer": args.optimizer,
        "lr_schedule": args.lr_schedule,
        "warmup_steps": warmup,
        "max_grad_norm": args.max_grad_norm,
        "options": list(extra),
        "bytes_per_step": statistics.mean(r["sent_bytes_per_step"] for r in later),
        "step_ms": 1000 * statistics.mean(r["step_s"] for r in later),
        "val_mae": rows[-1]["val_mae"],
        "best_val_mae": min(r["val_mae"] for r in rows),
        "val_curve": [r["val_mae"] for r in rows],
        "grad_norm": statistics.mean(r.get("grad_norm", math.nan) for r in rows),
        "grad_norm_max": max(r.get("grad_norm_max", math.nan) for r in rows),
        "train_mae": rows[-1]["train_mae"],  # during the last epoch (SmoothOut: at noisy weights)
        "epochs": epochs_done,
        "diverged": diverged,
        "wall_s": time.perf_counter() - t0,
    } | ({"val_mae": math.nan, "best_val_mae": math.nan} if diverged else {})


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    small = [r for r in rows if (r["batch"], r["epochs"]) == (rows[0]["batch"], rows[0]["epochs"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.4]})
    labels = [f"{r['hook']}\n{r['processes']}p" for r in small]
    axes[0].bar(labels, [r["bytes_per_step"] / 1e3 for r in small], color="tab:blue")
    axes[0].set_ylabel("kB sent per step per process (measured)")
    axes[0].set_yscale("log")
    axes[0].tick_params(axis="x", labelsize=7, labelrotation=45)

    def label(r: dict) -> str:
        opts = " ".join(o.strip("-").replace("smoothout", "SO") for o in r["options"])
        return (f"{r['hook']} {r['processes']}p, batch {r['batch']}, lr {r['lr']:g}, "
                f"{r['epochs']} ep {opts}")  # fmt: skip

    y = list(range(len(rows)))[::-1]
    axes[1].barh(y, [r["val_mae"] for r in rows], color="tab:orange", label="last epoch")
    axes[1].scatter([r["best_val_mae"] for r in rows], y, color="k", s=12, zorder=3,
                    label="best epoch")  # fmt: skip
    axes[1].set_yticks(y, [label(r) for r in rows], fontsize=7)
    axes[1].set_xlabel("validation MAE (eV)")
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def converge_study(work: Path, args: argparse.Namespace) -> dict:
    """fp32 vs TernGrad at batch 32, and batch 128 without/with SmoothOut, each over several
    seeds (each seed its own split, initialisation and batch order; the configurations of one
    seed share them), trained for ``--converge-epochs`` on ``--converge-subset`` molecules.
    Ratios are paired per seed, then averaged."""
    big = 4 * args.batch
    big_lr = args.converge_big_lr or args.lr
    at = f", lr {big_lr:g}" if big_lr != args.lr else ""
    chunk = args.converge_smoothout_chunk
    draws = ("--smoothout-chunk", str(chunk)) if chunk else ()
    per = f", a draw per {chunk} molecules" if chunk else ""
    configs = [("fp32", "allreduce", args.batch, args.lr, ())]
    if args.converge_terngrad:
        configs.append(("TernGrad", "terngrad", args.batch, args.lr, ()))
    big_name = f"fp32, batch {big}{at}"
    if args.converge_big:
        configs.append((big_name, "allreduce", big, big_lr, ()))
    for a, sched in args.converge_smoothout if args.converge_big else ():
        how = ("--smoothout-schedule", sched) if sched != "constant" else ()
        name = f"SmoothOut adaptive {a:g}{'' if not how else ' ' + sched}{per}, batch {big}{at}"
        configs.append(
            (name, "allreduce", big, big_lr,
             ("--smoothout", f"{a:g}", "--smoothout-adaptive", *draws, *how))
        )  # fmt: skip
    runs = []
    for seed in args.seeds:
        for name, hook, batch, lr, extra in configs:
            warmup = args.warmup_steps * args.batch // batch  # the same epochs of warm-up
            r = run(work / f"conv_{seed}_{len(runs)}", nproc=2, hook=hook, batch=batch, args=args,
                    extra=extra, epochs=args.converge_epochs, seed=seed, lr=lr, warmup=warmup,
                    subset=args.converge_subset)  # fmt: skip
            r["config"] = name
            runs.append(r)
            print(f"seed {seed} {name}: val MAE {r['val_mae']:.4f} (best {r['best_val_mae']:.4f})",
                  flush=True)  # fmt: skip
    return {"subset": args.converge_subset, "epochs": args.converge_epochs,
            "optimizer": args.optimizer, "lr": args.lr, "lr_schedule": args.lr_schedule,
            "warmup_steps": args.warmup_steps, "max_grad_norm": args.max_grad_norm,
            "runs": runs,
            "summary": converge_summary(runs, [c[0] for c in configs], big=big_name)}  # fmt: skip


def converge_summary(runs: list[dict], names: list[str], big: str = "") -> list[dict]:
    """Per configuration: mean (min, max) over seeds of the last and best validation MAE, and
    the mean per-seed ratio to fp32 at batch 32. SmoothOut rows also get ``gap_closed``: the
    share of the large-batch configuration ``big``'s excess over fp32 that they remove,
    ``1 - excess(SmoothOut) / excess(big)`` from the mean ratios over the SmoothOut row's seeds
    (and ``gap_closed_per_seed``), and ``vs_big``: the mean per-seed ratio to ``big`` alone.
    ``_se`` keys: standard errors of those means over seeds."""
    by = {(r["config"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out = []
    for name in names:
        rs = [by[(name, s)] for s in seeds if (name, s) in by]
        row = {"config": name, "seeds": [r["seed"] for r in rs]}
        for key in ("val_mae", "best_val_mae"):
            vals = [r[key] for r in rs]
            ratios = [r[key] / by[("fp32", r["seed"])][key] for r in rs]
            row[key] = statistics.mean(vals)
            row[key + "_range"] = [min(vals), max(vals)]
            row[key + "_vs_fp32"] = statistics.mean(ratios) - 1.0
            row[key + "_vs_fp32_se"] = _standard_error(ratios)
        row["bytes_per_step"] = statistics.mean(r["bytes_per_step"] for r in rs)
        row["diverged"] = sum(bool(r.get("diverged")) for r in rs)
        if all("train_mae" in r for r in rs):
            row["train_mae"] = statistics.mean(r["train_mae"] for r in rs)
        out.append(row)
    base = next((row for row in out if row["config"] == big), None)
    for row in out:
        if base is None or not row["config"].startswith("SmoothOut"):
            continue
        for key in ("val_mae", "best_val_mae"):
            # paired per seed against the large batch alone: mean and its standard error
            vs_big = [by[(row["config"], s)][key] / by[(big, s)][key] - 1.0 for s in row["seeds"]]
            row[key + "_vs_big"] = statistics.mean(vs_big)
            row[key + "_vs_big_se"] = _standard_error(vs_big)
            big_excess = statistics.mean(
                by[(big, s)][key] / by[("fp32", s)][key] - 1.0 for s in row["seeds"]
            )  # over this row's seeds (a pooled study may have more for the baselines)
            row[key + "_gap_closed"] = 1.0 - row[key + "_vs_fp32"] / big_excess
            row[key + "_gap_closed_per_seed"] = [
                1.0 - (by[(row["config"], s)][key] / by[("fp32", s)][key] - 1.0)
                / (by[(big, s)][key] / by[("fp32", s)][key] - 1.0)
                for s in row["seeds"]
            ]  # fmt: skip
    return out


def _standard_error(values: list[float]) -> float:
    """Standard error of the mean of ``values`` (NaN for fewer than two)."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def pooled_study(meta: dict, keys: list[str]) -> dict:
    """The runs of several saved converge studies (same settings, different seeds) as one."""
    studies = [meta[k] for k in keys]
    first = studies[0]
    same = ("subset", "epochs", "optimizer", "lr", "lr_schedule", "warmup_steps", "max_grad_norm")
    for k, st in zip(keys, studies, strict=True):
        if any(st.get(f) != first.get(f) for f in same):
            sys.exit(f"--pool: study {k!r} has other settings than {keys[0]!r}")
    runs = [r for st in studies for r in st["runs"]]
    seeds = [r["seed"] for r in runs if r["config"] == "fp32"]
    if len(seeds) != len(set(seeds)):
        sys.exit("--pool: the studies share seeds")
    names = list(dict.fromkeys(r["config"] for r in runs))
    big = next((n for n in names if n.startswith("fp32, batch")), "")
    return {**{f: first.get(f) for f in same}, "pooled": keys, "runs": runs,
            "summary": converge_summary(runs, names, big=big)}  # fmt: skip


def print_converge(study: dict) -> None:
    print(f"\n{len({r['seed'] for r in study['runs']})} seeds, QM9 subset {study['subset']}, "
          f"{study['epochs']} epochs, {study.get('optimizer', 'adam')} lr {study.get('lr', 1e-3):g} "
          f"({study.get('lr_schedule', 'plateau')} schedule, warm-up {study.get('warmup_steps', 0)} "
          f"steps, gradient norm clipped to {study.get('max_grad_norm', 0) or 'inf'}), "
          "2 processes (mean over seeds; vs fp32: mean of per-seed ratios)")  # fmt: skip
    print(f"{'configuration':>34} {'seeds':>5} {'B/step':>9} {'last val MAE':>13} {'vs fp32':>8} "
          f"{'best val MAE':>13} {'vs fp32':>8} {'train MAE':>10}")  # fmt: skip
    for r in study["summary"]:
        print(f"{r['config']:>34} {len(r['seeds']):>5} {r['bytes_per_step']:>9.0f} {r['val_mae']:>13.4f} "
              f"{100 * r['val_mae_vs_fp32']:>+7.1f}% {r['best_val_mae']:>13.4f} "
              f"{100 * r['best_val_mae_vs_fp32']:>+7.1f}% {r.get('train_mae', float('nan')):>10.4f}"
              + (f"  diverged: {r['diverged']} of {len(r['seeds'])} seeds" if r.get("diverged") else ""))  # fmt: skip
    for r in study["summary"]:
        if r["config"].startswith("fp32, batch"):
            print(f"{r['config']} vs fp32 (per-seed ratios): last {100 * r['val_mae_vs_fp32']:+.1f}"
                  f" +- {100 * r['val_mae_vs_fp32_se']:.1f}% (standard error), best "
                  f"{100 * r['best_val_mae_vs_fp32']:+.1f} +- {100 * r['best_val_mae_vs_fp32_se']:.1f}%")  # fmt: skip
        if "val_mae_gap_closed" in r:
            seeds = ", ".join(f"{100 * g:.0f}%" for g in r["val_mae_gap_closed_per_seed"])
            print(f"{r['config']}: closes {100 * r['val_mae_gap_closed']:.0f}% of the large-batch "
                  f"gap (last epoch; per seed {seeds}), "
                  f"{100 * r['best_val_mae_gap_closed']:.0f}% on the best epoch; vs the large "
                  f"batch alone, paired per seed: last {100 * r['val_mae_vs_big']:+.1f} +- "
                  f"{100 * r['val_mae_vs_big_se']:.1f}%, best {100 * r['best_val_mae_vs_big']:+.1f}"
                  f" +- {100 * r['best_val_mae_vs_big_se']:.1f}%")  # fmt: skip


def plot_converge(study: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors: dict[str, str] = {}
    for r in study["runs"]:
        first = r["config"] not in colors
        c = colors.setdefault(r["config"], f"C{len(colors)}")
        ax.plot(range(1, len(r["val_curve"]) + 1), r["val_curve"], color=c, lw=1, alpha=0.8,
                label=r["config"] if first else None)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation MAE (eV)")
    ax.set_yscale("log")
    ax.set_title(f"QM9 gap, {study['subset']} molecules, 2 processes, {study.get('optimizer', 'adam')} "
                 "(one line per seed)")  # fmt: skip
    ax.legend(fontsize=8)
    save_figure(fig, path)


def smoothout_list(value: str) -> list[tuple[float, str]]:
    """``"0.002,0.01:anneal"`` -> ``[(0.002, "constant"), (0.01, "anneal")]``."""
    out = []
    for item in filter(None, value.split(",")):
        amp, _, sched = item.partition(":")
        sched = sched or "constant"
        if sched not in SMOOTHOUT_SCHEDULES:
            raise argparse.ArgumentTypeError(
                f"{item!r}: schedule must be one of {', '.join(SMOOTHOUT_SCHEDULES)}"
            )
        out.append((float(amp), sched))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--smoothout", type=float, default=0.005,
                   help="SmoothOut amplitude of the large-batch rows (default 0.005, the best of "
                   "a sweep 0.002-0.05, uniform and adaptive)")  # fmt: skip
    p.add_argument("--long-epochs", type=int, default=20,
                   help="epochs of the longer fp32 vs TernGrad pair (2 processes; 0: skip)")  # fmt: skip
    p.add_argument("--big-lr", type=float, default=BIG_LR,
                   help="learning rate of the scaled-lr large-batch rows (0: skip)")  # fmt: skip
    p.add_argument("--rows", choices=("all", "terngrad-fp32", "converge"), default="all",
                   help="terngrad-fp32: run only the TernGrad rows with float32 exceptions and "
                   "merge them into the saved results; converge: run only the longer "
                   "multi-seed study (saved under 'converge')")  # fmt: skip
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1, 2],
                   help="converge study: seeds")  # fmt: skip
    p.add_argument("--converge-subset", type=int, default=4000)
    p.add_argument("--converge-epochs", type=int, default=25)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="optimizer of every run (sgd: momentum 0.9; give --lr too)")  # fmt: skip
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="plateau",
                   help="learning-rate schedule of every run (cosine: to 1e-6 over the epochs)")  # fmt: skip
    p.add_argument("--max-grad-norm", type=float, default=0.0,
                   help="clip every run's total gradient norm to this (0: off)")  # fmt: skip
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="cosine schedule: linear warm-up steps at --batch (the converge "
                   "study's 4x-batch runs warm up over the same epochs: a quarter of the steps)")  # fmt: skip
    p.add_argument("--converge-no-big", dest="converge_big", action="store_false",
                   help="converge study: only fp32 and TernGrad at batch 32")  # fmt: skip
    p.add_argument("--converge-no-terngrad", dest="converge_terngrad", action="store_false",
                   help="converge study: leave out TernGrad")  # fmt: skip
    p.add_argument("--converge-key", default="converge",
                   help="converge study: key in the saved JSON and name of the PNG")  # fmt: skip
    p.add_argument("--converge-smoothout", default=[(0.01, "constant")], type=smoothout_list,
                   help="converge study: adaptive SmoothOut at the 4x batch, comma-separated "
                   "AMPLITUDE or AMPLITUDE:SCHEDULE (constant, anneal, tanh), e.g. "
                   "0.002,0.01:anneal")  # fmt: skip
    p.add_argument("--converge-big-lr", type=float, default=0.0,
                   help="converge study: learning rate of the 4x-batch runs (default: --lr)")  # fmt: skip
    p.add_argument("--converge-smoothout-chunk", type=int, default=0,
                   help="converge study: SmoothOut draws once per this many molecules of a "
                   "process's batch (default 0: once per process and step)")  # fmt: skip
    p.add_argument("--pool", type=lambda v: [k for k in v.split(",") if k], default=None,
                   metavar="KEYS",
                   help="run nothing: print the saved converge studies KEYS (same settings, "
                   "other seeds) as one, e.g. converge_smoothout_schedules,"
                   "converge_smoothout_confirm")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny smoke run, results not saved")
    args = p.parse_args()
    if args.quick:
        args.subset, args.epochs = 400, 2
        args.long_epochs = 3 if args.long_epochs else 0
        args.converge_subset, args.converge_epochs, args.seeds = 400, 2, [0]
        args.converge_smoothout = args.converge_smoothout[:1]
    work = Path(tempfile.mkdtemp(prefix="dist_terngrad_"))
    rows = []
    saved = RESULTS / "distributed_terngrad.json"
    if args.pool:
        print_converge(pooled_study(json.loads(saved.read_text()), args.pool))
        return
    if args.rows == "converge":
        try:
            study = converge_study(work, args)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print_converge(study)
        if args.quick:
            return
        if not saved.is_file():
            sys.exit(f"--rows converge merges into {saved}, which does not exist: run all first")
        meta = json.loads(saved.read_text())
        meta[args.converge_key] = study
        write_results(saved, meta)
        png = RESULTS / f"distributed_{args.converge_key}.png"
        plot_converge(study, png)
        print(f"wrote {saved} ({args.converge_key!r}) and {png}")
        return
    try:
        for nproc in (2, 4) if args.rows == "all" else ():
            for hook in HOOKS:
                rows.append(run(work / f"{hook}{nproc}", nproc=nproc, hook=hook,
                                batch=args.batch, args=args))  # fmt: skip
                print(rows[-1], flush=True)
        for nproc in (2, 4):
            rows.append(run(work / f"tern_fp32_{nproc}", nproc=nproc, hook="terngrad",
                            batch=args.batch, args=args, extra=TERN_FP32))  # fmt: skip
            print(rows[-1], flush=True)
        if args.long_epochs:
            rows.append(run(work / "tern_fp32_long", nproc=2, hook="terngrad", batch=args.batch,
                            args=args, extra=TERN_FP32, epochs=args.long_epochs))  # fmt: skip
            print(rows[-1], flush=True)
        if args.long_epochs and args.rows == "all":  # TernGrad needs more iterations than fp32
            for hook in ("allreduce", "terngrad"):
                rows.append(run(work / f"{hook}_long", nproc=2, hook=hook, batch=args.batch,
                                args=args, epochs=args.long_epochs))  # fmt: skip
                print(rows[-1], flush=True)
        big = 4 * args.batch
        smooth = ("--smoothout", str(args.smoothout))
        lrs = (args.lr, args.big_lr) if args.big_lr else (args.lr,)
        for lr in lrs if args.rows == "all" else ():
            for extra in ((), (*smooth, "--smoothout-adaptive"), smooth):
                name = f"big{lr}" + "".join(e.strip("-")[:6] for e in extra)
                rows.append(run(work / name, nproc=2, hook="allreduce", batch=big, args=args,
                                extra=extra, lr=lr))  # fmt: skip
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if (
        args.rows != "all" and not args.quick
    ):  # merge: the saved rows, with earlier rows of these options replaced
        if not saved.is_file():
            sys.exit(f"--rows {args.rows} merges into {saved}, which does not exist: run all first")
        old = [r for r in json.loads(saved.read_text())["rows"] if r["options"] != list(TERN_FP32)]
        rows = old + rows
    print(f"\nQM9 subset {args.subset} (80/10/10), {args.epochs} epochs, lr {args.lr}, gap (eV)")
    print(f"{'procs':>5} {'hook':>10} {'batch':>5} {'lr':>6} {'ep':>3} {'options':>28} "
          f"{'B/step':>10} {'vs fp32':>8} {'step ms':>8} {'val MAE':>8} {'best':>7}")  # fmt: skip
    fp32 = {r["processes"]: r["bytes_per_step"] for r in rows if r["hook"] == "allreduce"
            and r["batch"] == args.batch and r["epochs"] == args.epochs}  # fmt: skip
    for r in rows:
        ref = fp32.get(r["processes"])
        r["fp32_bytes_ratio"] = ref / r["bytes_per_step"] if ref else float("nan")
        print(f"{r['processes']:>5} {r['hook']:>10} {r['batch']:>5} {r['lr']:>6g} {r['epochs']:>3} "
              f"{' '.join(r['options']):>28} {r['bytes_per_step']:>10.0f} "
              f"{r['fp32_bytes_ratio']:>7.1f}x {r['step_ms']:>8.1f} {r['val_mae']:>8.4f} "
              f"{r['best_val_mae']:>7.4f}")  # fmt: skip
    if args.quick:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"subset": args.subset, "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
            "cpus": os.cpu_count(), "rows": rows}  # fmt: skip
    if saved.is_file():  # studies of --rows converge are kept
        old_meta = json.loads(saved.read_text())
        meta.update({k: v for k, v in old_meta.items() if k.startswith("converge")})
    write_results(RESULTS / "distributed_terngrad.json", meta)
    plot(rows, RESULTS / "distributed_terngrad.png")
    print(f"wrote {RESULTS / 'distributed_terngrad.json'} and .png")


if __name__ == "__main__":
    main()
