"""SchNet inference speed on this CPU by runtime, thread count and OpenMP wait policy.

For each ``--models`` checkpoint: molecules/s at batch 1 and 64 on fixed QM9 test molecules
(collated beforehand, warm-up, median of ``--repeats`` interleaved passes) in each runtime
(``eager``, ``torchscript``: the frozen graph ``chemprune export`` writes), at each
``--threads`` count, under each ``--policies`` value of ``OMP_WAIT_POLICY`` (``PASSIVE``, or
``default``: unset, OpenMP's spin-then-sleep). The policy is read when torch loads, so each one
runs in a subprocess of this script. This is the measurement behind the advice in the README on
how to run the shipped models fast; run it on an otherwise idle machine (the load average is
recorded: spinning threads are what a second busy process punishes). Prints a table, writes JSON
and a PNG.

    .venv/bin/python benchmarks/inference_runtime.py \\
        --models models/schnet_gap_small.pt models/schnet_gap_small_pruned.pt
    .venv/bin/python benchmarks/inference_runtime.py --quick --out /tmp/r.json --plot /tmp/r.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import loadavg, pyplot, save_figure, timestamp, write_results  # loads no torch

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> list[dict]:
    """Runs inside one subprocess (one wait policy): every model, runtime and thread count."""
    import torch
    from qm9_prune import one_pass  # the project's one timing loop

    from chemprune.deploy.runtime import with_runtime
    from chemprune.molecules.checkpoint import load_model
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.data.qm9 import load_qm9

    data = load_qm9()
    loaded = [load_model(p) for p in args.models]
    test = loaded[0][1]["data"]["split"]["test"].numpy()
    mset = MoleculeSet(data.z, data.pos, data.ptr, None)
    batches = {
        1: [mset.collate(test[i : i + 1]) for i in range(args.time_mol1)],
        64: [mset.collate(test[i : i + 64]) for i in range(0, args.time_mol64, 64)],
    }

    modules = [
        (str(path), rt, with_runtime(m, rt))
        for path, (m, _) in zip(args.models, loaded, strict=True)
        for rt in args.runtimes
    ]
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        passes: dict[tuple[int, int], list[float]] = {}
        for rep in range(args.repeats + 1):  # round 0 warms up
            order = list(range(len(modules)))
            k = rep % len(order)
            for i in order[k:] + order[:k]:
                for bs, bl in batches.items():
                    rate = one_pass(modules[i][2], bl)
                    if rep:
                        passes.setdefault((i, bs), []).append(rate)
        for (i, bs), v in passes.items():
            path, rt, _ = modules[i]
            rows.append({"model": path, "runtime": rt, "threads": threads, "batch": bs,
                         "mol_per_s": statistics.median(v), "passes": v})  # fmt: skip
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=[str(ROOT / "models/schnet_gap_small.pt")])
    p.add_argument("--runtimes", type=lambda s: s.split(","), default=["eager", "torchscript"])
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--policies", type=lambda s: s.split(","), default=["PASSIVE", "default"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-mol64", type=int, default=512)
    p.add_argument("--time-mol1", type=int, default=128)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/inference_runtime.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/inference_runtime.png")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.time_mol64, args.time_mol1 = 1, 64, 8
    return args


def table(rows: list[dict]) -> str:
    ref = {(r["policy"], r["threads"], r["batch"]): r["mol_per_s"] for r in rows
           if r["model"] == rows[0]["model"] and r["runtime"] == "eager"}  # fmt: skip
    base = {r["batch"]: r["mol_per_s"] for r in rows
            if r["model"] == rows[0]["model"] and r["runtime"] == "eager"
            and r["policy"] == "PASSIVE" and r["threads"] == 2}  # fmt: skip
    head = (
        f"{'model':<30} {'runtime':<11} {'policy':<8} {'thr':>3} {'mol/s b1':>9} {'mol/s b64':>9}"
        f" {'x b1':>6} {'x b64':>6} {'x b1*':>6} {'x b64*':>6}"
    )
    lines = [head, "-" * len(head)]
    keyed = {(r["model"], r["runtime"], r["policy"], r["threads"], r["batch"]): r for r in rows}
    seen = []
    for r in rows:
        key = (r["model"], r["runtime"], r["policy"], r["threads"])
        if key in seen:
            continue
        seen.append(key)
        b1, b64 = keyed[(*key, 1)]["mol_per_s"], keyed[(*key, 64)]["mol_per_s"]
        pol, thr = r["policy"], r["threads"]
        lines.append(
            f"{Path(r['model']).stem:<30} {r['runtime']:<11} {pol:<8} {thr:>3} {b1:>9.0f} "
            f"{b64:>9.0f} {b1 / ref[(pol, thr, 1)]:>6.2f} {b64 / ref[(pol, thr, 64)]:>6.2f} "
            f"{b1 / base.get(1, float('nan')):>6.2f} {b64 / base.get(64, float('nan')):>6.2f}"
        )
    lines.append(
        "(x: vs the first model in eager mode at the same policy and threads; x*: vs the first "
        "model eager, PASSIVE, 2 threads: the way the project's CLI and benchmarks ran it)"
    )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    configs = list(dict.fromkeys((r["policy"], r["threads"]) for r in rows))
    series = list(dict.fromkeys((Path(r["model"]).stem, r["runtime"]) for r in rows))
    for ax, bs in zip(axes, (1, 64), strict=True):
        width = 0.8 / len(series)
        for k, (model, rt) in enumerate(series):
            ys = [next(r["mol_per_s"] for r in rows if (Path(r["model"]).stem, r["runtime"],
                       r["policy"], r["threads"], r["batch"]) == (model, rt, pol, thr, bs))
                  for pol, thr in configs]  # fmt: skip
            ax.bar([c + k * width for c in range(len(configs))], ys, width, label=f"{model} {rt}")
        ax.set_xticks([c + 0.4 - width / 2 for c in range(len(configs))],
                      [f"{pol}\n{thr} thread(s)" for pol, thr in configs], fontsize=8)  # fmt: skip
        ax.set_title(f"CPU molecules/s, batch {bs}")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    t0 = time.perf_counter()
    load_start = loadavg()
    rows = []
    for policy in args.policies:
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        cmd = [sys.executable, __file__, "--worker", *sys.argv[1:]] if argv is None else None
        cmd = cmd or [sys.executable, __file__, "--worker", *argv]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"the {policy} worker failed (exit {done.returncode})")
        rows += [r | {"policy": policy} for r in json.loads(done.stdout.strip().splitlines()[-1])]
    order = {m: k for k, m in enumerate(args.models)}
    rows.sort(key=lambda r: (args.policies.index(r["policy"]), r["threads"], order[r["model"]],
                             args.runtimes.index(r["runtime"]), r["batch"]))  # fmt: skip
    text = table(rows)
    print(text)
    import torch  # only for the version

    result = {
        "benchmark": "inference_runtime",
        "timestamp": timestamp(),
        "command": " ".join(["python", *sys.argv]),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "rows": rows,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }
    write_results(args.out, result)
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
