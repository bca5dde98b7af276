"""Structured pruning of SchNet on QM9 (CPU): chemprune's engines vs Torch-Pruning.

Per target (``--targets``, default gap and U0, eV): train one dense SchNet (128 features, 128
filters, 6 interactions, 50 Gaussians, cutoff 5 A) with ``chemprune.train`` on a seeded 80/10/10
split of ``--subset`` molecules (or load it, ``--dense``); prune copies at filter-channel sparsity
0.5/0.75/0.9 with the same fine-tuning budget each: ``attention`` (attention AutoPrune),
``autoprune`` (free gate per channel), ``magnitude`` (structured L1), ``random`` (seeded), all
through ``prune_schnet(kind="filter")``; ``torch_pruning`` (Torch-Pruning's ``MetaPruner`` +
``MagnitudeImportance(p=1)`` on chemprune's SchNet: every width pruned by the ratio, not only the
filters) and ``torch_pruning_pyg`` (the same on PyG's SchNet holding the dense weights, at
``--tp-pyg-ratios``), both fine-tuned with ``chemprune.finetune`` for the whole budget.

Every model is measured in the same run, dense first: test MAE, parameters, MACs on 64 test
molecules, saved file size, CPU inference molecules/s at batch 1 and 64 (``--threads``,
inference mode, warm-up, median of ``--repeats`` passes over fixed test molecules, models
interleaved) and speedups vs dense. Writes a table, JSON and a Pareto plot (test MAE vs speedup
at batch 64). OMP_WAIT_POLICY=PASSIVE is set before torch is imported.

    .venv/bin/python benchmarks/qm9_prune.py            # hours: see benchmarks/README.md
    .venv/bin/python benchmarks/qm9_prune.py --quick --out /tmp/qp.json --plot /tmp/qp.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from chemprune.checkpoint import atomic_save, load_model, model_checkpoint  # noqa: E402
from chemprune.compress_schnet import prune_schnet, split_from_checkpoint  # noqa: E402
from chemprune.data.batching import MoleculeSet  # noqa: E402
from chemprune.data.qm9 import load_qm9  # noqa: E402
from chemprune.data.splits import make_split, standard_sizes, subset_sizes  # noqa: E402
from chemprune.data.targets import get_target  # noqa: E402
from chemprune.evaluate import evaluate_model  # noqa: E402
from chemprune.finetune import finetune  # noqa: E402
from chemprune.interop.pyg import make_pyg_schnet, pyg_state_to_chemprune  # noqa: E402
from chemprune.models.schnet import SchNet  # noqa: E402
from chemprune.prune import PRUNERS, MagnitudePruner, register_pruner, summarize  # noqa: E402
from chemprune.train import TrainSettings, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# chemprune rows: engine and which widths it removes (``_all``: every width Torch-Pruning touches)
ALL_WIDTHS = "filter+filter_hidden+interaction+atom_basis"
CHEMPRUNE = {m: (m, "filter") for m in ("attention", "autoprune", "magnitude", "random")}
CHEMPRUNE |= {
    "attention_all": ("attention", ALL_WIDTHS),
    "magnitude_all": ("magnitude", ALL_WIDTHS),
}
CHEMPRUNE_METHODS = tuple(CHEMPRUNE)
DEFAULT_METHODS = ("attention", "autoprune", "magnitude", "random", "torch_pruning")
DEFAULT_METHODS += ("torch_pruning_pyg",)
METHODS = (*CHEMPRUNE_METHODS, "torch_pruning", "torch_pruning_pyg")
MARKERS = {"attention": "o", "autoprune": "s", "magnitude": "^", "random": "v"}
MARKERS |= {"attention_all": "h", "magnitude_all": "<"}
MARKERS |= {"torch_pruning": "D", "torch_pruning_pyg": "P", "pyg_dense": "X"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if "random" not in PRUNERS:

    @register_pruner("random")
    class RandomPruner(MagnitudePruner):
        """Random channel scores (seeded): the floor every scoring rule has to beat."""

        def __init__(self, *, seed: int = 0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.seed = int(seed)

        def score(self, model: nn.Module) -> dict[str, Tensor]:
            return {
                g.name: torch.rand(g.size, generator=torch.Generator().manual_seed(self.seed + k))
                for k, g in enumerate(self.groups)
            }


class PygAdapter(nn.Module):
    """PyG's SchNet behind chemprune's call ``model(z, pos, batch, num_molecules=...)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, z, pos, batch=None, pairs=None, num_molecules=None) -> Tensor:
        return self.net(z, pos, batch).reshape(-1)


def to_pyg(model: SchNet) -> nn.Module:
    """PyG SchNet with ``model``'s weights (the inverse of ``interop.pyg.from_pyg``)."""
    ref = model.atomref.clone()
    net = make_pyg_schnet(
        hidden_channels=model.hidden_channels,
        num_filters=model.filter_channels[0],
        num_interactions=len(model.interactions),
        num_gaussians=model.num_gaussians,
        cutoff=model.cutoff,
        readout="add" if model.readout == "sum" else "mean",
        mean=float(model.mean),
        std=float(model.std),
        atomref=ref.reshape(-1, 1) if bool(ref.any()) else None,
    )
    ours = model.state_dict()
    with torch.no_grad():
        for key, value in net.state_dict().items():
            if key == "initial_atomref":
                continue
            (name,) = pyg_state_to_chemprune({key.replace(".conv.nn.", ".mlp."): value})
            value.copy_(ours[name].reshape(value.shape))
    return net


# ---------------------------------------------------------------------- models
def dense_model(args, data, target: str) -> tuple[SchNet, Any, dict]:
    """Train the dense model (or load it from ``--dense``); returns model, split, info."""
    for path in args.dense:
        model, ckpt = load_model(path)
        if ckpt["target"]["name"] == target:
            log(f"{target}: dense model from {path}")
            return model, split_from_checkpoint(ckpt, len(data)), {"loaded": str(path)}
    sizes = standard_sizes(len(data)) if args.subset == 0 else subset_sizes(args.subset, len(data))
    split = make_split(len(data), sizes, args.seed)
    settings = TrainSettings(
        target=target, hidden_channels=args.hidden, filter_channels=args.filters,
        num_interactions=args.interactions, epochs=args.dense_epochs or 100_000, seed=args.seed,
        batch_size=args.batch_size,
    )  # fmt: skip
    out = Path(args.work_dir) / f"dense_{target}"
    log(
        f"{target}: training the dense model ({args.dense_minutes:g} min, {args.dense_epochs} epochs)"
    )
    log("  (reuse it later with --dense; with no --work-dir the folder is temporary)")
    resume = (out / "last.pt").exists()  # an interrupted benchmark goes on where it stopped
    summary = train(
        data, split, out, settings=settings, max_minutes=args.dense_minutes, progress=False,
        log=log, device=args.device, resume=resume,
    )  # fmt: skip
    model, _ = load_model(summary["best"] or summary["last"])
    return model, split, {"trained": summary, "settings": settings.to_dict()}


def run_chemprune(method: str, sparsity: float, dense: SchNet, mset, split, args) -> tuple:
    """Prune a copy of ``dense`` on ``mset``'s device (``--device``)."""
    model = copy.deepcopy(dense).to(mset.device)
    engine, kind = CHEMPRUNE[method]
    options: dict[str, Any] = {}
    if engine in ("autoprune", "attention"):
        options["lam"] = args.lam
    if engine == "random":
        options["seed"] = args.seed
    budget = {"finetune_minutes": args.finetune_minutes, "lr": args.lr, "seed": args.seed}
    budget["finetune_steps"] = args.finetune_steps
    budget["batch_size"] = args.batch_size
    report = prune_schnet(
        model, mset, split, method=engine, sparsity=sparsity, kind=kind,
        engine_options=options, progress=False, log=log, **budget,
    )  # fmt: skip
    report.pop("before", None)
    return model, report


def run_torch_pruning(model: nn.Module, net: nn.Module, ratio: float, mset, split, args) -> dict:
    """Torch-Pruning's MetaPruner on ``net`` (inside ``model``), then fine-tuning ``model``."""
    import torch_pruning as tp

    b = mset.collate(split.train[:8])
    ignored = [net.lin2] + ([net.embedding] if args.tp_ignore_embedding else [])
    if isinstance(getattr(net, "atomref", None), nn.Module):
        ignored.append(net.atomref)  # PyG's per-element reference (an Embedding), not a width
    importance = tp.importance.MagnitudeImportance(p=1)
    tp.pruner.MetaPruner(
        net, (b.z, b.pos, b.batch), importance, pruning_ratio=ratio, ignored_layers=ignored
    ).step()
    untuned = evaluate_model(model, mset, split.val)["mae"]
    log(f"torch_pruning {ratio}: val MAE {untuned:.4f} before fine-tuning")
    # the masked phase of prune_schnet: same loop, learning rate, batch and seed, whole budget
    tune = finetune(
        model, mset, split.train, split.val, minutes=args.finetune_minutes, lr=args.lr,
        seed=args.seed + 1, batch_size=args.batch_size, max_steps=args.finetune_steps,
        progress=False, log=log,
    )  # fmt: skip
    return {"val_mae_pruned_untuned": untuned, "finetune": tune, "ignored": len(ignored)}


# ---------------------------------------------------------------------- measurements
def widths(model: nn.Module) -> dict[str, Any]:
    if isinstance(model, SchNet):
        c = model.config()
        keys = ("hidden_channels", "filter_channels", "filter_hidden_channels")
        return {k: c[k] for k in (*keys, "interaction_channels")}
    net = model.net
    return {
        "hidden_channels": net.embedding.embedding_dim,
        "filter_channels": [blk.conv.lin1.out_features for blk in net.interactions],
        "filter_hidden_channels": [blk.mlp[0].out_features for blk in net.interactions],
    }


@torch.no_grad()
def static_stats(model: nn.Module, msets: tuple, split, tdict: dict, tmp: Path, name: str) -> dict:
    """Test MAE (on ``--device``), parameters, MACs on 64 test molecules, saved file size.

    ``msets`` is (molecules on ``--device``, molecules on the CPU); the model ends on the CPU.
    """
    dev_set, mset = msets
    model.to(dev_set.device).eval()
    test = evaluate_model(model, dev_set, split.test)
    model.cpu()
    b = mset.collate(split.test[:64])
    s = summarize(model, lambda m: m(b.z, b.pos, b.batch, num_molecules=b.num_molecules))
    path = tmp / f"{name}.pt"
    if isinstance(model, SchNet):
        atomic_save(model_checkpoint(model, target=tdict), path)
    else:  # PyG: a bare state_dict
        atomic_save(model.net.state_dict(), path)
    out = {"test_mae": test["mae"], "test_rmse": test["rmse"], "params": s["params"]}
    return out | {"macs_per_batch64": s["macs"], "file_bytes": path.stat().st_size, **widths(model)}


def timing_batches(mset, split, args) -> dict[int, list]:
    """Fixed test molecules, collated beforehand: the timings cover the model only."""
    n64, n1 = min(args.time_mol64, len(split.test)), min(args.time_mol1, len(split.test))
    return {
        1: [mset.collate(split.test[i : i + 1]) for i in range(n1)],
        64: [mset.collate(split.test[i : min(i + 64, n64)]) for i in range(0, n64, 64)],
    }


def one_pass(model: nn.Module, batches: list) -> float:
    n = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            n += model(b.z, b.pos, b.batch, num_molecules=b.num_molecules).numel()
    return n / (time.perf_counter() - t0)


def measure_speed(models: list[nn.Module], batches: dict[int, list], args) -> list[dict]:
    """Median molecules/s per model and batch size; models interleaved within each repeat."""
    passes: list[dict[int, list[float]]] = [{bs: [] for bs in batches} for _ in models]
    for m in models:
        m.eval()
        for bl in batches.values():
            one_pass(m, bl[: max(2, len(bl) // 8)])  # warm-up
    for rep in range(args.repeats):
        k = rep % len(models)
        for i in list(range(k, len(models))) + list(range(k)):
            for bs, bl in batches.items():
                passes[i][bs].append(one_pass(models[i], bl))
    return [{f"mol_per_s_b{bs}": statistics.median(v) for bs, v in p.items()} for p in passes]


# ---------------------------------------------------------------------- one target
def run_target(target: str, data, args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    dense, split, dense_info = dense_model(args, data, target)
    t = get_target(target)
    tdict = {"name": t.name, "unit": t.unit, "readout": t.readout, "description": t.description}
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(t))
    dev_set = mset.to(args.device)  # training, fine-tuning and test MAE run there
    entries: list[tuple[dict, nn.Module]] = [({"method": "dense", "sparsity": 0.0}, dense)]
    checks: dict[str, Any] = {}
    for method in args.methods:
        if method in CHEMPRUNE_METHODS:
            for sp in args.all_widths_sparsities if method.endswith("_all") else args.sparsities:
                log(f"{target}: {method} at sparsity {sp}")
                s0 = time.perf_counter()
                model, rep = run_chemprune(method, sp, dense, dev_set, split, args)
                rep["seconds"] = time.perf_counter() - s0
                entries.append(({"method": method, "sparsity": sp, "report": rep}, model))
            continue
        pyg = method == "torch_pruning_pyg"
        if pyg:
            base = PygAdapter(to_pyg(dense))
            b = mset.collate(split.test[:64])
            with torch.no_grad():
                d = (base(b.z, b.pos, b.batch) - dense(b.z, b.pos, b.batch)).abs().max()
            checks["pyg_copy_max_abs_diff"] = float(d)
            entries.append(({"method": "pyg_dense", "sparsity": 0.0}, base))
        for ratio in args.tp_pyg_ratios if pyg else args.sparsities:
            log(f"{target}: {method} at ratio {ratio}")
            model = copy.deepcopy(base if pyg else dense).to(args.device)
            row = {"method": method, "sparsity": ratio, "pruned": "all widths"}
            s0 = time.perf_counter()
            try:
                row["report"] = run_torch_pruning(
                    model, model.net if pyg else model, ratio, dev_set, split, args
                )
            except Exception as err:  # recorded verbatim; the run goes on
                row["error"] = f"{type(err).__name__}: {err}"
                log(f"{target}: {method} failed: {row['error']}")
            row["seconds"] = time.perf_counter() - s0
            entries.append((row, None if "error" in row else model))
    log(f"{target}: measuring {sum(m is not None for _, m in entries)} models")
    rows = []
    for k, (row, model) in enumerate(entries):
        row = {"target": target, "unit": t.unit, **row}
        if model is not None:
            row.update(static_stats(model, (dev_set, mset), split, tdict, tmp, f"{target}_{k}"))
            if args.save_models is not None and row["method"] in ("dense", *CHEMPRUNE_METHODS):
                path = args.save_models / f"{target}_{row['method']}_{row['sparsity']:g}.pt"
                atomic_save(model_checkpoint(model, target=tdict), path)
        rows.append(row)
    live = [(r, m) for r, (_, m) in zip(rows, entries, strict=True) if m is not None]
    speeds = measure_speed([m for _, m in live], timing_batches(mset, split, args), args)
    for (row, _), sp in zip(live, speeds, strict=True):
        row.update(sp)
    ref, pyg_ref = rows[0], next((r for r in rows if r["method"] == "pyg_dense"), None)
    for row, bs in ((r, bs) for r in rows for bs in (1, 64) if f"mol_per_s_b{bs}" in r):
        row[f"speedup_b{bs}"] = row[f"mol_per_s_b{bs}"] / ref[f"mol_per_s_b{bs}"]
        if pyg_ref is not None and "pyg" in row["method"]:  # also vs PyG's own dense model
            row[f"speedup_b{bs}_vs_pyg_dense"] = (
                row[f"mol_per_s_b{bs}"] / pyg_ref[f"mol_per_s_b{bs}"]
            )
    info = {"target": tdict, "split_sizes": list(split.sizes), "split_seed": split.seed}
    info |= {"dense": dense_info, "checks": checks, "seconds": time.perf_counter() - t0}
    return info | {"rows": rows}


# ---------------------------------------------------------------------- report
def format_table(results: list[dict]) -> str:
    head = (
        f"{'target':<6} {'method':<18} {'sparsity':>8} {'test MAE':>10} {'params':>9} "
        f"{'MMACs/64':>9} {'file KB':>8} {'mol/s b1':>9} {'mol/s b64':>9} {'x b1':>6} {'x b64':>6}"
    )
    lines = [head, "-" * len(head)]
    for res in results:
        for r in res["rows"]:
            start = f"{r['target']:<6} {r['method']:<18} {r['sparsity']:>8.2f} "
            if "error" in r:
                lines.append(start + f"FAILED: {r['error']}")
                continue
            lines.append(
                start + f"{r['test_mae']:>10.4f} {r['params']:>9,d} "
                f"{r['macs_per_batch64'] / 1e6:>9.1f} {r['file_bytes'] / 1024:>8.1f} "
                f"{r['mol_per_s_b1']:>9.1f} {r['mol_per_s_b64']:>9.1f} "
                f"{r['speedup_b1']:>6.2f} {r['speedup_b64']:>6.2f}"
            )
    lines.append(
        "(test MAE in the target's unit; speedups vs the dense chemprune model, same run; "
        "torch_pruning* and *_all prune every width by the ratio, the others filter channels only)"
    )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.6), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        rows = [r for r in res["rows"] if "error" not in r]
        dense = rows[0]
        ax.axhline(dense["test_mae"], color="k", lw=0.8, label=f"dense {dense['test_mae']:.4f}")
        ax.plot([1.0], [dense["test_mae"]], "k*", ms=11)
        for method in dict.fromkeys(r["method"] for r in rows[1:]):
            pts = sorted((r["speedup_b64"], r["test_mae"], r["sparsity"]) for r in rows
                         if r["method"] == method)  # fmt: skip
            xs, ys, sp = zip(*pts, strict=True)
            line = ax.plot(xs, ys, marker=MARKERS.get(method, "o"), ls=":", label=method)[0]
            for x, y, s in pts:
                if s:
                    ax.annotate(f"{s:g}", (x, y), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", color=line.get_color())  # fmt: skip
        failed = [r["method"] for r in res["rows"] if "error" in r]
        title = f"QM9 {res['target']['name']} ({res['target']['unit']}), SchNet pruned"
        ax.set_title(title + (f"\nfailed: {', '.join(sorted(set(failed)))}" if failed else ""))
        ax.set_xlabel("speedup vs dense, CPU batch 64")
        ax.set_ylabel(f"test MAE ({res['target']['unit']})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def environment(args) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for pkg in ("torch", "torch-geometric", "torch-pruning", "numpy", "chemprune", "qm9pack"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    host = {"platform": platform.platform(), "processor": platform.processor()}
    host |= {"cpu_count": os.cpu_count(), "threads": args.threads}
    host |= {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if hasattr(os, "getloadavg"):
        host["loadavg_start"] = list(os.getloadavg())
    return {"versions": out, "machine": host}


# ---------------------------------------------------------------------- main
def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=lambda s: s.split(","), default=["gap", "U0"])
    p.add_argument(
        "--methods", type=lambda s: s.split(","), default=list(DEFAULT_METHODS),
        help=f"any of {', '.join(METHODS)} (default: all but the _all variants)",
    )  # fmt: skip
    p.add_argument("--sparsities", type=floats, default=None, help="default 0.5,0.75,0.9")
    p.add_argument("--tp-pyg-ratios", type=floats, default=None, help="default 0.5,0.75")
    p.add_argument(
        "--all-widths-sparsities", type=floats, default=[0.5, 0.75],
        help="sparsities of the *_all methods (default 0.5,0.75: Torch-Pruning's ratios)",
    )  # fmt: skip
    p.add_argument(
        "--subset", type=int, default=None,
        help="molecules split 80/10/10 (default 20000); 0: the standard 110,000/10,000/10,831",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="training and fine-tuning batch")
    p.add_argument(
        "--device", default="cpu",
        help="where training, fine-tuning and test MAE run (cpu, cuda); timings are always CPU",
    )  # fmt: skip
    p.add_argument(
        "--save-models", type=Path, default=None,
        help="folder for the chemprune checkpoints of every row (not Torch-Pruning's)",
    )  # fmt: skip
    p.add_argument("--dense", type=Path, nargs="*", default=[], help="dense checkpoints to reuse")
    p.add_argument("--dense-minutes", type=float, default=None, help="default 60")
    p.add_argument("--finetune-minutes", type=float, default=None, help="default 5")
    p.add_argument(
        "--dense-epochs", type=int, default=None,
        help="stop the dense training after this many epochs (besides --dense-minutes)",
    )  # fmt: skip
    p.add_argument(
        "--finetune-steps", type=int, default=None,
        help="optimizer steps per pruned model, gate training included (besides the minutes): "
        "the same budget for every method however busy the machine is",
    )  # fmt: skip
    p.add_argument("--hidden", type=int, default=None, help="default 128")
    p.add_argument("--filters", type=int, default=None, help="default 128")
    p.add_argument("--interactions", type=int, default=None, help="default 6")
    p.add_argument("--lam", type=float, default=1e-4, help="AutoPrune/attention gate strength")
    p.add_argument("--lr", type=float, default=2e-4, help="fine-tuning learning rate")
    p.add_argument("--tp-ignore-embedding", action="store_true",
                   help="Torch-Pruning: keep the feature width (ignore the embedding too)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="timed passes, default 5")
    p.add_argument("--time-mol64", type=int, default=512, help="test molecules timed at batch 64")
    p.add_argument("--time-mol1", type=int, default=128, help="test molecules timed at batch 1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=None, help="dense runs (default: temporary)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/qm9_prune.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/qm9_prune.png")
    p.add_argument("--quick", action="store_true", help="tiny smoke run of every code path")
    args = p.parse_args(argv)
    full = {"sparsities": [0.5, 0.75, 0.9], "tp_pyg_ratios": [0.5, 0.75], "subset": 20000}
    full |= {"dense_minutes": 60.0, "finetune_minutes": 5.0, "hidden": 128, "filters": 128}
    full |= {"interactions": 6, "repeats": 5}
    quick = {"sparsities": [0.5], "tp_pyg_ratios": [0.5], "subset": 300, "dense_minutes": 0.2}
    quick |= {"finetune_minutes": 0.05, "hidden": 32, "filters": 32, "interactions": 2}
    quick |= {"repeats": 1}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        p.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if any(
        not 0 < s < 1 for s in args.sparsities + args.tp_pyg_ratios + args.all_widths_sparsities
    ):
        p.error("sparsities and ratios must be in (0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    env = environment(args)
    data = load_qm9()
    results = []
    with tempfile.TemporaryDirectory(prefix="qm9_prune_") as tmp:
        if args.work_dir is None:
            args.work_dir = Path(tmp) / "runs"
        for target in args.targets:
            results.append(run_target(target, data, args, Path(tmp)))
    env["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    text = format_table(results)
    print(text)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["dense"] = [str(d) for d in args.dense]
    result = {
        "benchmark": "qm9_prune",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        **env,
        "results": results,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    plot(results, args.plot)
    log(f"wrote {args.out} and {args.plot} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
