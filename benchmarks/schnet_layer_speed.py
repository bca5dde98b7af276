"""Time the atom-wise layers of two SchNets on the same atoms: is a low-rank split faster?

Issue 20's low-rank goal is about the layers themselves (the whole model's speed is
dominated by the filter networks and the convolution, which low rank of the atom-wise layers
does not touch). For every layer of ``--layers`` (default: the atom-wise ``in2f``, ``f2out``
and ``out`` of every interaction block) in both models, the median over ``--repeats``
interleaved passes of the layer applied to the atom features of ``--molecules`` test
molecules (batch 64 at a time), on ``--threads`` threads; the load average is recorded.
Prints a table, writes JSON and a PNG.

    .venv/bin/python benchmarks/schnet_layer_speed.py --base DENSE.pt --model LOWRANK.pt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import header, loadavg, pyplot, save_figure, write_results  # noqa: E402

from chemprune.molecules.checkpoint import load_model  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_dataset  # noqa: E402
from chemprune.pipeline.compress_schnet import split_from_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def atom_inputs(model, batches) -> list[torch.Tensor]:
    """The residual stream entering each block (the atom-wise layers' input width is the
    atom basis), per batch."""
    return [model.embedding(b.z) for b in batches]


def time_layer(layer, inputs) -> float:
    with torch.inference_mode():
        for x in inputs[:2]:
            layer(x)
        t0 = time.perf_counter()
        for x in inputs:
            layer(x)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the dense model")
    p.add_argument("--model", type=Path, required=True, help="the model with low-rank layers")
    p.add_argument("--layers", default="in2f,f2out,out", help="per-block layer names")
    p.add_argument("--molecules", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/schnet_layer_speed.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/schnet_layer_speed.png")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base, ckpt = load_model(args.base)
    model, _ = load_model(args.model)
    data, _, _ = load_dataset(args.data_dir)
    split = split_from_checkpoint(ckpt, len(data))
    mset = MoleculeSet(data.z, data.pos, data.ptr)
    test = split.test[: args.molecules]
    batches = [mset.collate(test[i : i + 64]) for i in range(0, len(test), 64)]
    x = atom_inputs(base, batches)
    rows = []
    for b in range(min(len(base.interactions), len(model.interactions))):
        for name in args.layers.split(","):
            la = getattr(base.interactions[b], name)
            lb = getattr(model.interactions[b], name)
            ta, tb = [], []
            inp = (
                x
                if la.in_features == x[0].shape[1]
                else [torch.randn(t.shape[0], la.in_features) for t in x]
            )
            for r in range(args.repeats):  # interleaved, the order alternating
                pair = ((la, ta), (lb, tb)) if r % 2 == 0 else ((lb, tb), (la, ta))
                for layer, out in pair:
                    out.append(time_layer(layer, inp))
            a, bt = statistics.median(ta), statistics.median(tb)
            rows.append({
                "block": b, "layer": name, "base": repr(la).split("(")[0], "model": repr(lb).splitlines()[0],
                "base_s": a, "model_s": bt, "speedup": a / bt,
            })  # fmt: skip
    total_a = sum(r["base_s"] for r in rows)
    total_b = sum(r["model_s"] for r in rows)
    result = {
        **header("schnet_layer_speed", args),
        "atoms": int(sum(t.shape[0] for t in x)),
        "load_average": loadavg(),
        "rows": rows,
        "total_speedup": total_a / total_b,
    }
    write_results(args.out, result)
    print(f"{'block':>5} {'layer':<6} {'model layer':<40} {'base ms':>8} {'model ms':>9} {'x':>6}")
    for r in rows:
        print(f"{r['block']:>5} {r['layer']:<6} {r['model'][:40]:<40} {1e3 * r['base_s']:>8.2f} "
              f"{1e3 * r['model_s']:>9.2f} {r['speedup']:>6.2f}")  # fmt: skip
    print(
        f"all these layers: {result['total_speedup']:.2f}x ({result['atoms']} atoms, "
        f"{args.threads} thread(s), load {result['load_average'][0]:.1f})"
    )
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    return 0


def plot(rows, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['block']}.{r['layer']}" for r in rows]
    ax.bar(labels, [r["speedup"] for r in rows], color="tab:blue")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_ylabel("speedup of the layer")
    ax.tick_params(axis="x", rotation=60)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
