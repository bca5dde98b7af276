"""Structured sparsity learning and force regularisation on LeNet-5, against Wen et al.

The paper side of issue 20 (the MNIST rows; the pruning engines' unstructured comparisons are
``benchmarks/mnist_prune.py``, whose data, Caffe solver and training loop this script reuses):

1. ``dense``: Caffe's LeNet (conv1 20, conv2 50 filters, fc1 500) trained with Caffe's MNIST
   recipe for ``--dense-iters``;
2. ``dense_continued``: the control, the dense net trained on for the same iterations every
   other row gets after it (an under-trained parent improves with any extra training);
3. ``ssl_<strength>``: filter-wise and channel-wise SSL: one group per conv1 filter (its weights
   and bias together with the conv2 input channel it feeds) and one per conv2 filter (with the
   fc1 columns it feeds), group lasso by the proximal step after every solver step for
   ``--ssl-iters``; the groups at zero are removed for real (``shrink``), then
   ``--finetune-iters`` of plain training;
4. ``force``: force regularisation on fc1 (800 -> 500) for ``--ssl-iters``, then fc1 split at
   the rank that keeps ``--rank-energy`` of its energy, then the same fine-tuning.

Per row: test error, filters left per conv layer, FLOP per layer (multiply-adds of one image),
and each layer's CPU time measured on ``--time-images`` test images, in turns with the dense
net, ``--threads`` threads, median of ``--repeats`` (speed is measured, never derived from
FLOPs). The paper's rows (``benchmarks/papers/wen_ssl_force.md``): LeNet 2, 0.8% error, filters
5-19, FLOP 25%-7.6%, speedup 1.64x-5.23x; LeNet 3, 1.0%, 3-12, 15%-3.6%, 1.99x-7.44x.

    .venv/bin/python benchmarks/mnist_ssl.py                      # ~25 min on 1 thread
    .venv/bin/python benchmarks/mnist_ssl.py --quick --out /tmp/s.json --plot /tmp/s.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import loadavg, pyplot, save_figure, settings, write_results  # noqa: E402
from lenet import LeNet5Caffe  # noqa: E402
from mnist_prune import Caffe, Data, error, train_iters  # noqa: E402
from torch import nn  # noqa: E402

from chemprune.engines.prune import ForcePruner, SSLPruner, channel_groups, shrink, weight_groups  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER = {
    "LeNet 2": {"error": 0.008, "filters": [5, 19], "flop": [0.25, 0.076], "speedup": [1.64, 5.23]},
    "LeNet 3": {"error": 0.010, "filters": [3, 12], "flop": [0.15, 0.036], "speedup": [1.99, 7.44]},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ssl_groups(model: LeNet5Caffe, x: torch.Tensor):
    """conv1 and conv2 filter groups whose penalty also covers the next layer's matching input
    slices (filter-wise + channel-wise: a filter goes with every weight that reads it)."""
    groups = [g for g in channel_groups(model, x) if g.mask_slots[0].module in ("conv1", "conv2")]
    return [dataclasses.replace(g, mask_slots=g.slots) for g in groups]


def flops(model: LeNet5Caffe) -> list[int]:
    """Multiply-adds of one 28x28 image in conv1 (24x24 outputs) and conv2 (8x8)."""
    c1, c2 = model.conv1, model.conv2
    return [c1.out_channels * 24 * 24 * c1.in_channels * 25,
            c2.out_channels * 8 * 8 * c2.in_channels * 25]  # fmt: skip


def layer_inputs(model: LeNet5Caffe, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        a1 = model.pool1(model.conv1(x))
        a2 = model.flatten(model.pool2(model.conv2(a1)))
    return {"conv1": x, "conv2": a1, "fc1": a2}


def time_layers(models: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict:
    """Seconds per pass of each layer of each model, the models in turns, median of repeats."""
    inputs = {k: layer_inputs(m, x) for k, m in models.items()}
    seconds: dict[str, dict[str, list[float]]] = {k: {} for k in models}
    with torch.no_grad():
        for r in range(repeats + 1):
            for k, m in models.items():
                for layer, inp in inputs[k].items():
                    mod = getattr(m, layer)
                    t0 = time.perf_counter()
                    mod(inp)
                    dt = time.perf_counter() - t0
                    if r:  # the first round warms up
                        seconds[k].setdefault(layer, []).append(dt)
    return {k: {layer: statistics.median(v) for layer, v in s.items()} for k, s in seconds.items()}


def run_ssl(dense: LeNet5Caffe, data: Data, args, strength: float, start_iter: int) -> nn.Module:
    model = copy.deepcopy(dense)
    data.reseed(args.seed, "ssl", str(strength))
    groups = ssl_groups(model, data.xte[:2])
    pruner = SSLPruner(groups=groups, sparsity=0.0, strength=strength)
    solver = Caffe(model, start_iter=start_iter)

    def prox(it: int) -> None:
        pruner.proximal(model, solver.opt.param_groups[0]["lr"])

    train_iters(model, data, solver, args.ssl_iters, hook=prox)
    learned = pruner.learned_sparsity(model, 0.0)
    log(f"ssl {strength:g}: zero groups {learned}")
    pruner.threshold(model, 0.0)
    shrink(model, groups)
    train_iters(model, data, solver, args.finetune_iters)
    return model


def run_force(dense: LeNet5Caffe, data: Data, args, start_iter: int) -> tuple[nn.Module, dict]:
    model = copy.deepcopy(dense)
    data.reseed(args.seed, "force")
    groups = [g for g in weight_groups(model) if g.name == "fc1"]
    pruner = ForcePruner(groups=groups, sparsity=0.0, strength=args.force_strength)
    solver = Caffe(model, start_iter=start_iter)
    for _ in range(args.ssl_iters):
        x, y = data.batch()
        solver.opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        pruner.regularize(model)
        solver.step()
    pruner.project(model, pruner.ranks_for_energy(model, args.rank_energy))
    split = pruner.factorize(model)
    train_iters(model, data, solver, args.finetune_iters)
    return model, {k: list(v) for k, v in split.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get(
        "CHEMPRUNE_MNIST", ROOT.parent / "shared/datasets/mnist")))  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-iters", type=int, default=10000)
    p.add_argument("--ssl-iters", type=int, default=10000)
    p.add_argument("--finetune-iters", type=int, default=5000)
    p.add_argument("--strengths", type=lambda s: [float(x) for x in s.split(",")],
                   default=[0.1, 0.2])  # fmt: skip
    p.add_argument("--force-strength", type=float, default=1e-2)
    p.add_argument("--rank-energy", type=float, default=0.9)
    p.add_argument("--time-images", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mnist_ssl.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/mnist_ssl.png")
    p.add_argument("--quick", action="store_true", help="tiny budgets for a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.dense_iters, args.ssl_iters, args.finetune_iters = 60, 60, 20
        args.time_images, args.repeats = 64, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    data = Data(args.data)
    data.reseed(args.seed, "dense")
    dense = LeNet5Caffe()
    solver = Caffe(dense)
    train_iters(dense, data, solver, args.dense_iters)
    models: dict[str, nn.Module] = {"dense": dense}
    extra: dict[str, dict] = {}
    cont = copy.deepcopy(dense)
    data.reseed(args.seed, "dense_continued")
    train_iters(cont, data, Caffe(cont, start_iter=args.dense_iters),
                args.ssl_iters + args.finetune_iters)  # fmt: skip
    models["dense_continued"] = cont
    for s in args.strengths:
        models[f"ssl_{s:g}"] = run_ssl(dense, data, args, s, args.dense_iters)
    models["force"], extra["force"] = run_force(dense, data, args, args.dense_iters)
    x = data.xte[: args.time_images]
    load0 = loadavg()
    timing = time_layers(models, x, args.repeats)
    rows = []
    for name, m in models.items():
        f, f0 = flops(m), flops(dense)
        rows.append({
            "model": name, "test_error": error(m, data.xte, data.yte),
            "filters": [m.conv1.out_channels, m.conv2.out_channels],
            "conv2_input_channels": m.conv2.in_channels,
            "flop_share": [a / b for a, b in zip(f, f0, strict=True)],
            "seconds": timing[name],
            "speedup": {k: timing["dense"][k] / v for k, v in timing[name].items()},
            "params": sum(p.numel() for p in m.parameters()), **extra.get(name, {}),
        })  # fmt: skip
    head = f"{'model':<16} {'error':>6} {'filters':>8} {'FLOP conv1-conv2':>17} {'speedup conv1-conv2-fc1':>24}"
    lines = [head, "-" * len(head)]
    for r in rows:
        sp = r["speedup"]
        lines.append(
            f"{r['model']:<16} {100 * r['test_error']:>5.2f}% {'-'.join(map(str, r['filters'])):>8} "
            f"{100 * r['flop_share'][0]:>7.1f}%-{100 * r['flop_share'][1]:.1f}% "
            f"{sp['conv1']:>9.2f}x-{sp['conv2']:.2f}x-{sp['fc1']:.2f}x"
        )
    lines.append("paper (Wen et al. 2016): " + "; ".join(
        f"{k} {100 * v['error']:.1f}%, filters {v['filters'][0]}-{v['filters'][1]}, speedup "
        f"{v['speedup'][0]}x-{v['speedup'][1]}x" for k, v in PAPER.items()))  # fmt: skip
    text = "\n".join(lines)
    print(text)
    result = {
        "benchmark": "mnist_ssl", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": settings(args),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "loadavg_before_timing": load0, "loadavg_after": loadavg()},
        "rows": rows, "paper": PAPER, "table": text, "seconds": time.time() - t0,
    }  # fmt: skip
    write_results(args.out, result)
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ax.scatter(
            [r["speedup"]["conv1"]],
            [100 * r["test_error"]],
            marker="o",
            label=f"{r['model']} conv1",
        )
        ax.scatter(
            [r["speedup"]["conv2"]],
            [100 * r["test_error"]],
            marker="s",
            label=f"{r['model']} conv2",
        )
    for k, v in PAPER.items():
        ax.scatter(v["speedup"], [100 * v["error"]] * 2, marker="x", color="k")
        ax.annotate(k, (v["speedup"][1], 100 * v["error"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("measured layer speedup vs dense (x = paper)")
    ax.set_ylabel("test error, %")
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
