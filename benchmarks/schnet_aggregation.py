"""Neighbour sums of SchNet's convolution on CPU: row-major ``index_add`` vs channel-major.

chemprune's ``InteractionBlock.convolve`` sums the messages of each atom's neighbours along dim
1 of a channel-major ``[F, N]`` tensor. Until 0.1 it summed along dim 0 of ``[N, F]`` (PyG's
layout), which torch 2.13 on CPU runs through a parallel sort-based scatter. Both give the same
sums in the same order; this benchmark times whole models with either layout (the old one is
patched in for its rows), interleaved, at batch 1 and 64, on 1 and 2 threads, on real QM9 test
molecules, and checks that predictions are identical and forces agree. Prints a table, writes
JSON and a PNG.

    .venv/bin/python benchmarks/schnet_aggregation.py
    .venv/bin/python benchmarks/schnet_aggregation.py --quick --out /tmp/a.json --plot /tmp/a.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from chemprune.checkpoint import atomic_write_text, load_model  # noqa: E402
from chemprune.data.batching import MoleculeSet  # noqa: E402
from chemprune.data.qm9 import load_qm9  # noqa: E402
from chemprune.models.schnet import InteractionBlock, SchNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHANNEL_MAJOR = InteractionBlock.convolve


def row_major(self: InteractionBlock, h: Tensor, pairs: Tensor, w: Tensor) -> Tensor:
    """The former layout: ``index_add`` along dim 0 of ``[N, F]``."""
    x = self.in2f(h)
    i, j = pairs[0], pairs[1]
    agg = torch.zeros_like(x)
    agg = agg.index_add(0, i, x.index_select(0, j) * w)
    return agg.index_add(0, j, x.index_select(0, i) * w)


LAYOUTS = {"row_major": row_major, "channel_major": CHANNEL_MAJOR}


def one_pass(model: SchNet, batches: list) -> float:
    n = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            n += model(b.z, b.pos, b.batch, num_molecules=b.num_molecules).numel()
    return n / (time.perf_counter() - t0)


def models(args) -> dict[str, SchNet]:
    out = {}
    for path in args.models:
        out[Path(path).stem], _ = load_model(path)
    if args.quick:
        out = dict(list(out.items())[:1])
    return out


def check_equal(model: SchNet, b) -> dict[str, float]:
    res = {}
    for name, fn in LAYOUTS.items():
        InteractionBlock.convolve = fn
        pos = b.pos.clone().requires_grad_(True)
        y = model(b.z, pos, b.batch, num_molecules=b.num_molecules)
        (f,) = torch.autograd.grad(y.sum(), pos)
        res[name] = (y.detach(), f)
    InteractionBlock.convolve = CHANNEL_MAJOR
    (y0, f0), (y1, f1) = res["row_major"], res["channel_major"]
    return {
        "max_abs_diff_energy": float((y0 - y1).abs().max()),
        "max_abs_diff_force": float((f0 - f1).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        nargs="+",
        default=[str(ROOT / "models/schnet_gap_small.pt")],
        help="checkpoints to time (default: the released dense model)",
    )
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-mol64", type=int, default=512)
    p.add_argument("--time-mol1", type=int, default=128)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/schnet_aggregation.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/schnet_aggregation.png")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.time_mol64, args.time_mol1 = 1, 64, 8
    t0 = time.perf_counter()
    load_start = list(os.getloadavg())
    data = load_qm9()
    ms = models(args)
    ckpt_test = None
    for path in args.models:
        _, ck = load_model(path)
        ckpt_test = ck["data"]["split"]["test"].numpy()
        break
    mset = MoleculeSet(data.z, data.pos, data.ptr, None)
    batches = {
        1: [mset.collate(ckpt_test[i : i + 1]) for i in range(args.time_mol1)],
        64: [mset.collate(ckpt_test[i : i + 64]) for i in range(0, args.time_mol64, 64)],
    }
    checks = {name: check_equal(m, batches[64][0]) for name, m in ms.items()}
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs: dict[tuple[str, str, int], list[float]] = {}
        for rep in range(args.repeats + 1):  # the first round warms up
            for name, m in ms.items():
                order = list(LAYOUTS.items())
                for layout, fn in order if rep % 2 == 0 else order[::-1]:
                    InteractionBlock.convolve = fn
                    for bs, bl in batches.items():
                        rate = one_pass(m, bl)
                        if rep:
                            runs.setdefault((name, layout, bs), []).append(rate)
            InteractionBlock.convolve = CHANNEL_MAJOR
        for (name, layout, bs), v in runs.items():
            rows.append({"model": name, "layout": layout, "threads": threads, "batch": bs,
                         "mol_per_s": statistics.median(v), "passes": v})  # fmt: skip
    ref = {(r["model"], r["threads"], r["batch"]): r["mol_per_s"] for r in rows
           if r["layout"] == "row_major"}  # fmt: skip
    for r in rows:
        r["speedup_vs_row_major"] = r["mol_per_s"] / ref[(r["model"], r["threads"], r["batch"])]
    head = f"{'model':<28} {'threads':>7} {'batch':>5} {'row-major mol/s':>16} {'channel-major':>14} {'x':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["layout"] != "channel_major":
            continue
        lines.append(
            f"{r['model']:<28} {r['threads']:>7} {r['batch']:>5} "
            f"{ref[(r['model'], r['threads'], r['batch'])]:>16.0f} {r['mol_per_s']:>14.0f} "
            f"{r['speedup_vs_row_major']:>6.2f}"
        )
    for name, c in checks.items():
        lines.append(
            f"{name}: max |energy diff| {c['max_abs_diff_energy']:.2e}, "
            f"max |force diff| {c['max_abs_diff_force']:.2e}"
        )
    text = "\n".join(lines)
    print(text)
    result = {
        "benchmark": "schnet_aggregation",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg_start": load_start,
        "loadavg_end": list(os.getloadavg()),
        "checks": checks,
        "rows": rows,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, bs in zip(axes, (1, 64), strict=True):
        labels, old, new = [], [], []
        for r in rows:
            if r["layout"] == "channel_major" and r["batch"] == bs:
                labels.append(f"{r['model']}\n{r['threads']} thr")
                old.append(ref[(r["model"], r["threads"], bs)])
                new.append(r["mol_per_s"])
        x = range(len(labels))
        ax.bar([k - 0.2 for k in x], old, 0.4, label="row-major index_add (before)", color="0.6")
        ax.bar([k + 0.2 for k in x], new, 0.4, label="channel-major (now)", color="C0")
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.set_title(f"CPU molecules/s, batch {bs}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    plt.close(fig)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
