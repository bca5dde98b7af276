"""Distributed SchNet training on QM9 with compressed gradients: bytes, step time, accuracy.

Every run is the real command ``chemprune train --nproc W --comm-hook H`` (torchrun, gloo over
TCP on this machine) on the same QM9 subset (``--subset``, split 80/10/10, seed 0), model
(hidden 64, 64 filters, 3 interactions, 68,033 parameters) and number of epochs. Runs:

* W = 2 and 4 processes x hooks ``allreduce`` (DDP's fp32 all-reduce), ``fp16``, ``powersgd``
  (PyTorch's built-ins) and ``terngrad``; global batch 32;
* large batch: W = 2, fp32 all-reduce, global batch 128 (4x), without and with SmoothOut.

Measured, from each run's ``history.jsonl`` (rank 0):

* bytes sent per step: the increase of this process's ``wchar`` in ``/proc/self/io`` across each
  training step (forward, backward with the hook's collectives, the step's 1-flag agreement
  all-reduce, optimizer step), i.e. the bytes gloo actually handed to the kernel's
  write/writev calls on its TCP sockets, headers included (no checkpoint or log is written
  inside that window; the progress bar is off). Not computed from tensor sizes;
* step time: mean wall time of those steps (2 CPU cores: 4 processes share them);
* validation MAE (eV, HOMO-LUMO gap) after the last epoch.

Run (from the repository root; ~12 minutes on 2 cores)::

    .venv/bin/python benchmarks/distributed_terngrad.py
    .venv/bin/python benchmarks/distributed_terngrad.py --quick   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
HOOKS = ("allreduce", "fp16", "powersgd", "terngrad")


def run(
    out: Path, *, nproc: int, hook: str, batch: int, args: argparse.Namespace, extra=()
) -> dict:
    cmd = [sys.executable, "-m", "chemprune", "train", "--target", "gap"]
    cmd += ["--subset", str(args.subset), "--epochs", str(args.epochs), "--lr", str(args.lr)]
    cmd += ["--hidden", "64", "--filters", "64", "--interactions", "3", "--threads", "1"]
    cmd += ["--batch-size", str(batch), "--nproc", str(nproc), "--comm-hook", hook]
    cmd += ["--checkpoint-every", "0", "--no-progress", "--out", str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    later = rows[1:] or rows  # the first epoch includes warm-up
    return {
        "processes": nproc,
        "hook": hook,
        "batch": batch,
        "options": list(extra),
        "bytes_per_step": statistics.mean(r["sent_bytes_per_step"] for r in later),
        "step_ms": 1000 * statistics.mean(r["step_s"] for r in later),
        "val_mae": rows[-1]["val_mae"],
        "best_val_mae": min(r["val_mae"] for r in rows),
        "epochs": len(rows),
        "wall_s": time.perf_counter() - t0,
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    small = [r for r in rows if r["batch"] == rows[0]["batch"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = [f"{r['hook']}\n{r['processes']}p" for r in small]
    axes[0].bar(labels, [r["bytes_per_step"] / 1e3 for r in small], color="tab:blue")
    axes[0].set_ylabel("kB sent per step per process (measured)")
    axes[0].set_yscale("log")
    axes[1].bar(
        [
            *labels,
            *[
                f"batch {r['batch']}\n{' '.join(r['options']) or 'plain'}"
                for r in rows
                if r not in small
            ],
        ],  # fmt: skip
        [r["val_mae"] for r in rows],
        color="tab:orange",
    )
    axes[1].set_ylabel("validation MAE (eV)")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--smoothout", type=float, default=0.01)
    p.add_argument("--quick", action="store_true", help="tiny smoke run, results not saved")
    args = p.parse_args()
    if args.quick:
        args.subset, args.epochs = 400, 2
    work = Path(tempfile.mkdtemp(prefix="dist_terngrad_"))
    rows = []
    try:
        for nproc in (2, 4):
            for hook in HOOKS:
                rows.append(run(work / f"{hook}{nproc}", nproc=nproc, hook=hook,
                                batch=args.batch, args=args))  # fmt: skip
                print(rows[-1], flush=True)
        big = 4 * args.batch
        for extra in ((), ("--smoothout", str(args.smoothout), "--smoothout-adaptive"),
                      ("--smoothout", str(args.smoothout))):  # fmt: skip
            name = "big" + "".join(e.strip("-")[:6] for e in extra)
            rows.append(run(work / name, nproc=2, hook="allreduce", batch=big, args=args,
                            extra=extra))  # fmt: skip
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nQM9 subset {args.subset} (80/10/10), {args.epochs} epochs, lr {args.lr}, gap (eV)")
    print(f"{'procs':>5} {'hook':>10} {'batch':>5} {'options':>28} {'B/step':>10} "
          f"{'vs fp32':>8} {'step ms':>8} {'val MAE':>8}")  # fmt: skip
    fp32 = {r["processes"]: r["bytes_per_step"] for r in rows if r["hook"] == "allreduce"
            and r["batch"] == args.batch}  # fmt: skip
    for r in rows:
        r["fp32_bytes_ratio"] = fp32[r["processes"]] / r["bytes_per_step"]
        print(f"{r['processes']:>5} {r['hook']:>10} {r['batch']:>5} {' '.join(r['options']):>28} "
              f"{r['bytes_per_step']:>10.0f} {r['fp32_bytes_ratio']:>7.1f}x "
              f"{r['step_ms']:>8.1f} {r['val_mae']:>8.4f}")  # fmt: skip
    if args.quick:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"subset": args.subset, "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
            "cpus": os.cpu_count(), "rows": rows}  # fmt: skip
    (RESULTS / "distributed_terngrad.json").write_text(json.dumps(meta, indent=1))
    plot(rows, RESULTS / "distributed_terngrad.png")
    print(f"wrote {RESULTS / 'distributed_terngrad.json'} and .png")


if __name__ == "__main__":
    main()
