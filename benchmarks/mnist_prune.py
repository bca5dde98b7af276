"""Pruning engines against the papers on MNIST: LeNet-300-100 and LeNet-5 (Caffe variant).

For each model: train the dense net with Caffe's MNIST recipe (SGD 0.01, momentum 0.9, weight
decay 5e-4, "inv" policy, batch 64, inputs scaled by 1/256, bias learning rate x2), then prune
copies of it with

* ``torch_prune``: ``torch.nn.utils.prune.global_unstructured`` with L1, iterative (compression
  doubling every ``--retrain-iters`` iterations of retraining): the reference users already have;
* ``magnitude``: chemprune's global magnitude engine on the same schedule;
* ``olmp``: chemprune's OLMP (nevergrad thresholds per layer under a validation-accuracy
  constraint, DNS masks, search every ``--olmp-search-every`` iterations, then retraining);
* ``autoprune``: chemprune's AutoPrune (weights and gates updated in turns, the gates by the
  weakly coupled rules on training batches, or with ``--ap-gate-batches held-out`` on the
  held-out images) for each ``--autoprune-lams`` value, then masked fine-tuning.

All methods prune weights and biases and report compression = all parameters / nonzero
parameters (OLMP's convention), test error on the 10,000 test images, and wall time. The last
5,000 training images are held out for OLMP's constraint. Every model and every method draws
its batches from a stream seeded by ``--seed`` and its own name, so a row reproduces whether it
runs alone (``--models``/``--methods``) or in the full call.

Published: OLMP 114x (LeNet-300-100), 298x (LeNet-5); AutoPrune 310x (LeNet-5); both without
accuracy loss. Writes a table, JSON (``--out``) and an error-vs-compression plot (``--plot``).
OMP_WAIT_POLICY=PASSIVE is set before torch is imported (spin-waiting makes small steps ~60x
slower on 2 threads).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import pyplot, save_figure, settings, write_results  # noqa: E402
from lenet import LeNet5Caffe, LeNet300100  # noqa: E402
from mnist_data import mnist_tensors  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402

from chemprune.engines.prune import (  # noqa: E402
    AutoPrunePruner,
    MagnitudePruner,
    OLMPPruner,
    PruningGroup,
    Slot,
    count_parameters,
    remove_masks,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"lenet300100": LeNet300100, "lenet5": LeNet5Caffe}
PUBLISHED = {"lenet300100": {"olmp": 114}, "lenet5": {"olmp": 298, "autoprune": 310}}


# ---------------------------------------------------------------------------- data and training
class Data:
    def __init__(self, path: Path, val: int = 5000) -> None:
        x, y = mnist_tensors(path, "train")
        self.xtr, self.ytr = x[:-val], y[:-val]
        self.xval, self.yval = x[-val:], y[-val:]
        self.xte, self.yte = mnist_tensors(path, "test")
        self.rng = np.random.default_rng(0)

    def reseed(self, seed: int, *keys: str) -> None:
        """Restart the batch sampler from a stream of its own for ``keys`` (model, method), so a
        result does not depend on which other models or methods ran before it in the call."""
        self.rng = np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])

    def batch(self, n: int = 64, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (self.xtr, self.ytr) if split == "train" else (self.xval, self.yval)
        idx = torch.from_numpy(self.rng.integers(0, len(x), n))
        return x[idx], y[idx]


@torch.no_grad()
def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 2000) -> float:
    model.eval()
    wrong = sum(
        int((model(x[i : i + bs]).argmax(1) != y[i : i + bs]).sum()) for i in range(0, len(x), bs)
    )
    model.train()
    return wrong / len(x)


class Caffe:
    """Caffe's MNIST solver: SGD, momentum 0.9, weight decay 5e-4, lr 0.01 (1 + 1e-4 it)^-0.75."""

    def __init__(self, params_of: nn.Module, start_iter: int = 0, base_lr: float = 0.01) -> None:
        weights = [p for n, p in params_of.named_parameters() if not n.endswith("bias")]
        biases = [p for n, p in params_of.named_parameters() if n.endswith("bias")]
        self.opt = torch.optim.SGD(
            [{"params": weights, "lr_mult": 1.0}, {"params": biases, "lr_mult": 2.0}],
            lr=base_lr,
            momentum=0.9,
            weight_decay=5e-4,
        )
        self.base_lr, self.it = base_lr, start_iter

    def step(self) -> None:
        lr = self.base_lr * (1 + 1e-4 * self.it) ** -0.75
        for g in self.opt.param_groups:
            g["lr"] = lr * g["lr_mult"]
        self.opt.step()
        self.it += 1


def train_iters(model: nn.Module, data: Data, solver: Caffe, iters: int, hook=None) -> None:
    model.train()
    for _ in range(iters):
        x, y = data.batch()
        solver.opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        solver.step()
        if hook is not None:
            hook(solver.it)


def param_groups(model: nn.Module) -> list[PruningGroup]:
    """Weights and biases of every layer, unstructured (OLMP's convention)."""
    groups = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            for p in ("weight", "bias"):
                t = getattr(mod, p)
                groups.append(
                    PruningGroup(
                        name=f"{name}.{p}",
                        kind="weight",
                        size=t.numel(),
                        mask_slots=(Slot(name, p),),
                        tags=(name,),
                    )
                )
    return groups


def compression(model: nn.Module) -> float:
    """All parameters / nonzero parameters, read from each layer's effective ``weight`` and
    ``bias`` (works for chemprune's parametrized masks and torch.nn.utils.prune's hooks alike)."""
    total = nonzero = 0
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            for t in (mod.weight, mod.bias):
                total += t.numel()
                nonzero += int(torch.count_nonzero(t))
    assert total <= count_parameters(model)[0]  # layers hold at most all parameters
    return total / max(nonzero, 1)


# ---------------------------------------------------------------------------- methods
def run_iterative(kind: str, dense: nn.Module, data: Data, args, start_iter: int) -> dict:
    """torch.nn.utils.prune global L1, or chemprune magnitude, compression doubling per step."""
    model = copy.deepcopy(dense)
    total = count_parameters(model)[0]
    solver = Caffe(model, start_iter)
    curve = []
    t0 = time.perf_counter()
    pairs = [
        (m, p)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
        for p in ("weight", "bias")
    ]
    prev_density = 1.0
    for ratio in args.ratios:
        density = 1.0 / ratio
        if kind == "torch_prune":
            # amount is relative to the entries still unpruned
            torch_prune.global_unstructured(
                pairs,
                pruning_method=torch_prune.L1Unstructured,
                amount=1.0 - density / prev_density,
            )
        else:
            MagnitudePruner(groups=param_groups(model), sparsity=1.0 - density).apply(model)
        prev_density = density
        train_iters(model, data, solver, args.retrain_iters)
        curve.append(
            {
                "compression": compression(model),
                "test_error": error(model, data.xte, data.yte),
                "iters": solver.it - start_iter,
                "seconds": time.perf_counter() - t0,
            }
        )
        log(
            f"  {kind:<11} {curve[-1]['compression']:7.1f}x  test error {100 * curve[-1]['test_error']:.2f}%"
        )
    assert abs(count_parameters(model)[0] - total) == 0
    return {"curve": curve, "seconds": time.perf_counter() - t0}


def run_olmp(dense: nn.Module, data: Data, args, start_iter: int) -> dict:
    model = copy.deepcopy(dense)
    xv, yv = data.xval[: args.olmp_val], data.yval[: args.olmp_val]

    def metric(m: nn.Module) -> float:
        return 1.0 - error(m, xv, yv, bs=len(xv))

    pruner = OLMPPruner(
        groups=param_groups(model),
        sparsity=0.999,
        metric=metric,
        max_drop=args.olmp_max_drop,
        reference="current",
        budget=args.olmp_budget,
        bounds=(0.0, 20.0),
        step_size=2.0,
        partition=lambda g: g.tags[0],
        search_every=args.olmp_search_every,
        prune_until=args.olmp_prune_iters,
    )
    solver = Caffe(model, start_iter)
    curve = []
    t0 = time.perf_counter()

    def hook(it: int) -> None:
        k = it - start_iter
        if k < args.olmp_prune_iters and pruner.step(model, k):
            curve.append(
                {
                    "compression": compression(model),
                    "test_error": error(model, data.xte, data.yte),
                    "iters": k,
                    "seconds": time.perf_counter() - t0,
                    "c": dict(pruner.c),
                }
            )
            log(
                f"  olmp        {curve[-1]['compression']:7.1f}x  test error {100 * curve[-1]['test_error']:.2f}%"
                f"  (iter {k})"
            )

    pruner.step(model, 0)  # first search before any retraining
    train_iters(model, data, solver, args.olmp_prune_iters + args.olmp_retrain_iters, hook)
    # freeze: after prune_until the masks stop changing; retraining used straight-through
    # gradients, so bake the masks and report
    remove_masks(model)
    final = {
        "compression": compression(model),
        "test_error": error(model, data.xte, data.yte),
        "iters": solver.it - start_iter,
        "seconds": time.perf_counter() - t0,
    }
    curve.append(final)
    log(
        f"  olmp        {final['compression']:7.1f}x  test error {100 * final['test_error']:.2f}% (final)"
    )
    return {"curve": curve, "seconds": final["seconds"], "thresholds_c": pruner.c}


def run_autoprune(dense: nn.Module, data: Data, args, start_iter: int, lam: float) -> dict:
    model = copy.deepcopy(dense)
    pruner = AutoPrunePruner(
        groups=param_groups(model),
        sparsity=0.99,
        lam=lam,
        alpha=args.ap_alpha,
        init=args.ap_init,
        weight_grad=args.ap_weight_grad,
    )
    aux = pruner.attach(model)
    solver = Caffe(model, start_iter)
    if args.ap_opt == "adam":
        m_opt = torch.optim.Adam(aux, lr=args.ap_lr)
    else:  # plain SGD: the step of a gate scales with its gradient (and with lam)
        m_opt = torch.optim.SGD(aux, lr=args.ap_lr, momentum=0.9)
    t0 = time.perf_counter()
    model.train()
    for k in range(args.ap_iters + args.ap_settle_iters):
        if k == args.ap_iters:  # settling: no sparsity pressure, closed important gates reopen
            pruner.lam = 0.0
        # weights on training batches
        x, y = data.batch()
        solver.opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        solver.step()
        # auxiliary parameters on another batch, plus the gate regulariser
        x, y = data.batch(split="val" if args.ap_gate_batches == "held-out" else "train")
        m_opt.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.grad = None
        nn.functional.cross_entropy(model(x), y).backward()
        pruner.regularize(model)
        m_opt.step()
        if (k + 1) % max(args.ap_iters // 4, 1) == 0:
            log(
                f"  autoprune   lam {lam:g}: iter {k + 1}, gates closed {100 * pruner.gate_sparsity():.2f}%"
            )
    # the images the gates fit with --ap-gate-batches held-out
    held_out = error(model, data.xval, data.yval)
    pruner.apply(model)  # the learnt gates become fixed masks
    gated = {
        "compression": compression(model),
        "test_error": error(model, data.xte, data.yte),
        "held_out_error": held_out,
    }
    train_iters(model, data, solver, args.ap_finetune_iters)
    remove_masks(model)
    final = {
        "compression": compression(model),
        "test_error": error(model, data.xte, data.yte),
        "iters": args.ap_iters + args.ap_settle_iters + args.ap_finetune_iters,
        "seconds": time.perf_counter() - t0,
        "lam": lam,
        "before_finetune": gated,
    }
    log(
        f"  autoprune   {final['compression']:7.1f}x  test error {100 * final['test_error']:.2f}% (lam {lam:g})"
    )
    return final


# ---------------------------------------------------------------------------- reporting
def log(msg: str) -> None:
    print(msg, flush=True)


def final_points(method: str, points: list[dict]) -> list[dict]:
    """Models a user would keep: every retrained level of the iterative methods, every lambda
    of AutoPrune, but only OLMP's final model (its other points are mid-pruning snapshots)."""
    return points[-1:] if method == "olmp" else points


def best_within(points: list[dict], dense_err: float, tol: float) -> dict | None:
    # compared in millionths: an error exactly tol above dense counts as within (no float slop)
    ok = [p for p in points if round(1e6 * (p["test_error"] - dense_err)) <= round(1e6 * tol)]
    return max(ok, key=lambda p: p["compression"]) if ok else None


def table(results: dict, tol: float) -> str:
    head = (
        f"{'model':<12} {'method':<12} {'max ratio':>10} {'test err':>9} {'dense err':>9} "
        f"{'ratio @ +0.1pt':>15} {'err there':>9} {'wall s':>8}  published"
    )
    lines = [head, "-" * len(head)]
    for model, r in results.items():
        d = r["dense"]["test_error"]
        lines.append(
            f"{model:<12} {'dense':<12} {1.0:>10.1f} {100 * d:>8.2f}% {100 * d:>8.2f}% "
            f"{'':>15} {'':>9} {r['dense']['seconds']:>8.0f}"
        )
        for method, res in r["methods"].items():
            pts = final_points(method, res["points"])
            last = max(pts, key=lambda p: p["compression"])
            ok = best_within(pts, d, tol)
            pub = PUBLISHED.get(model, {}).get(method.split(":")[0])
            ok_ratio = f"{ok['compression']:.1f}x" if ok else "-"
            ok_err = f"{100 * ok['test_error']:.2f}%" if ok else "-"
            pub_s = f"{pub}x" if pub else ""
            lines.append(
                f"{model:<12} {method:<12} {last['compression']:>9.1f}x {100 * last['test_error']:>8.2f}% "
                f"{100 * d:>8.2f}% {ok_ratio:>15} {ok_err:>9} {res['seconds']:>8.0f}  {pub_s}"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path, tol: float) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
    for ax, (model, r) in zip(axes[0], results.items(), strict=True):
        d = 100 * r["dense"]["test_error"]
        ax.axhline(d, color="k", lw=0.8, label=f"dense {d:.2f}%")
        ax.axhline(d + 100 * tol, color="k", lw=0.8, ls=":", label="dense + 0.1 pt")
        for method, res in r["methods"].items():
            pts = res["points"]
            xs = [p["compression"] for p in pts]
            ys = [100 * p["test_error"] for p in pts]
            if method == "olmp":  # a trajectory in time, then the final model
                line = ax.plot(
                    xs[:-1], ys[:-1], ".:", ms=3, alpha=0.6, label="olmp (during pruning)"
                )[0]
                ax.plot(xs[-1:], ys[-1:], "*", ms=12, color=line.get_color(), label="olmp (final)")
            elif method == "autoprune":  # one final model per regularisation strength
                ax.plot(xs, ys, "*", ms=12, label="autoprune (final, one per lambda)")
            else:
                order = np.argsort(xs)
                ax.plot(
                    np.array(xs)[order],
                    np.array(ys)[order],
                    "o-",
                    ms=3,
                    label=f"{method} (after each retraining)",
                )
        for k, (m, ratio) in enumerate(PUBLISHED.get(model, {}).items()):
            ax.axvline(ratio, color="grey", ls="--", lw=0.6)
            side = 1.04 if k % 2 == 0 else 1 / 1.04  # alternate sides: close lines stay legible
            ax.text(
                ratio * side,
                d + 2.8,
                f"{m} paper {ratio}x",
                fontsize=7,
                rotation=90,
                va="top",
                ha="left" if k % 2 == 0 else "right",
                color="grey",
            )
        ax.set_xscale("log")
        ax.set_ylim(max(0.0, d - 0.5), d + 3.0)
        ax.set_xlabel("compression (all parameters / nonzero)")
        ax.set_ylabel("test error (%)")
        ax.set_title(model)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("CHEMPRUNE_MNIST", ROOT.parent / "shared/datasets/mnist")),
    )
    p.add_argument("--models", default="lenet300100,lenet5")
    p.add_argument("--methods", default="torch_prune,magnitude,olmp,autoprune")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-iters", type=int, default=10000)
    p.add_argument(
        "--ratios",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[2, 4, 8, 16, 32, 64, 128, 256, 512],
    )
    p.add_argument(
        "--retrain-iters", type=int, default=1000, help="iterative methods: retraining per step"
    )
    p.add_argument("--olmp-prune-iters", type=int, default=10000)
    p.add_argument("--olmp-retrain-iters", type=int, default=5000)
    p.add_argument("--olmp-search-every", type=int, default=1000)
    p.add_argument("--olmp-budget", type=int, default=100)
    p.add_argument("--olmp-val", type=int, default=2000, help="held-out images for the constraint")
    p.add_argument(
        "--olmp-max-drop", type=float, default=0.003, help="allowed accuracy drop per search"
    )
    p.add_argument("--ap-iters", type=int, default=16000)
    p.add_argument("--ap-finetune-iters", type=int, default=5000)
    p.add_argument(
        "--autoprune-lams",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[5e-5, 1e-4, 2e-4, 3e-4],
    )
    p.add_argument("--ap-lr", type=float, default=1e-3)
    p.add_argument(
        "--ap-opt", choices=["adam", "sgd"], default="adam", help="optimizer of the gates"
    )
    p.add_argument(
        "--ap-weight-grad",
        choices=["masked", "straight"],
        default="masked",
        help="AutoPrune: weights behind closed gates frozen (masked) or still learning",
    )
    p.add_argument(
        "--ap-settle-iters",
        type=int,
        default=0,
        help="AutoPrune: iterations with lam = 0 before the gates are frozen",
    )
    p.add_argument(
        "--ap-gate-batches",
        choices=["train", "held-out"],
        default="train",
        help="AutoPrune: batches the gates are updated on (held-out: the 5,000 images kept "
        "from training; the gates then fit those images, see README)",
    )
    p.add_argument("--ap-alpha", type=float, default=0.1)
    p.add_argument("--ap-init", type=float, default=0.01)
    p.add_argument(
        "--tol", type=float, default=0.001, help="allowed test-error increase (0.001 = 0.1 pt)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mnist_prune.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/mnist_prune.png")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the results of models not run now from an existing --out (one process per "
        "model, run side by side)",
    )
    p.add_argument("--quick", action="store_true", help="tiny budgets for a smoke run")
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-render the table and plot of a saved run (no training)",
    )
    args = p.parse_args(argv)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        saved["table"] = table(saved["results"], args.tol)
        print(saved["table"])
        write_results(args.from_json, saved)  # the table is derived data
        plot(saved["results"], args.plot, args.tol)
        return 0
    if args.quick:
        args.dense_iters, args.retrain_iters, args.ratios = 200, 50, [2, 8, 32]
        args.olmp_prune_iters, args.olmp_retrain_iters, args.olmp_search_every = 200, 50, 100
        args.olmp_budget, args.ap_iters, args.ap_finetune_iters = 10, 100, 50
        args.autoprune_lams = [1e-3]
    torch.set_num_threads(args.threads)
    data = Data(args.data)
    results: dict = {}
    for name in args.models.split(","):
        torch.manual_seed(args.seed)
        data.reseed(args.seed, name)
        dense = MODELS[name]()
        t0 = time.perf_counter()
        solver = Caffe(dense)
        train_iters(dense, data, solver, args.dense_iters)
        derr = error(dense, data.xte, data.yte)
        log(
            f"{name}: dense test error {100 * derr:.2f}% after {args.dense_iters} iterations "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        r = {
            "dense": {
                "test_error": derr,
                "params": count_parameters(dense)[0],
                "seconds": time.perf_counter() - t0,
                "iters": args.dense_iters,
            },
            "methods": {},
        }
        for method in args.methods.split(","):
            data.reseed(args.seed, name, method)
            torch.manual_seed(args.seed)
            if method in ("torch_prune", "magnitude"):
                res = run_iterative(method, dense, data, args, solver.it)
                r["methods"][method] = {"points": res["curve"], "seconds": res["seconds"]}
            elif method == "olmp":
                res = run_olmp(dense, data, args, solver.it)
                r["methods"][method] = {
                    "points": res["curve"],
                    "seconds": res["seconds"],
                    "thresholds_c": res["thresholds_c"],
                }
            elif method == "autoprune":
                pts = []
                for lam in args.autoprune_lams:  # each strength on its own stream too
                    data.reseed(args.seed, name, method, f"{lam:g}")
                    pts.append(run_autoprune(dense, data, args, solver.it, lam))
                r["methods"][method] = {"points": pts, "seconds": sum(x["seconds"] for x in pts)}
            else:
                raise SystemExit(f"unknown method {method!r}")
        r["meta"] = {  # per model, so that runs of single models can be merged (--merge)
            "torch": torch.__version__,
            "threads": args.threads,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "args": settings(args),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        results[name] = r
    if args.merge and args.out.exists():  # keep the other models of an earlier run
        results = {**json.loads(args.out.read_text())["results"], **results}
    text = table(results, args.tol)
    print(text)
    write_results(args.out, {"results": results, "table": text})
    plot(results, args.plot, args.tol)
    log(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
