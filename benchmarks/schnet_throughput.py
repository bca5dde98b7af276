"""SchNet training and inference throughput on QM9 (CPU): chemprune vs PyG vs schnetpack.

All three models have the same architecture and size (128 features, 128 filters, 6 interactions,
50 Gaussians, cosine cutoff 5 Angstrom; 455,809 parameters) and see the same real QM9 molecules
(a seeded sample from ``load_qm9()``, target: HOMO-LUMO gap in eV) in the same batch order.

Measured, in molecules per second (median of ``--repeats`` timed passes over all molecules,
after ``--warmup`` untimed batches; implementations interleaved within each repeat):

* train, model only: batches collated beforehand and kept in memory; each step is forward, MSE
  loss, backward and an Adam step;
* train, incl. data: the same, collating every batch inside the timed loop: chemprune and PyG
  with ``MoleculeSet.collate``; schnetpack as its users run it: one property dict per molecule,
  its per-sample neighbour-list transform (``MatScipyNeighborList``, as in schnetpack's QM9
  config, or ``ASENeighborList``) and ``CastTo32``, then ``_atoms_collate_fn`` via
  ``AtomsLoader`` (``num_workers=0``; molecules come from memory, not from an ASE database);
* infer, model only / incl. data: the same under ``torch.inference_mode()``.

chemprune and PyG build their radius graph inside the forward pass (PyG through chemprune's
``radius_pairs``, since PyG's own needs pyg-lib), so it is counted in every column; schnetpack's
neighbour list is part of its data loading and is only in the "incl. data" columns.

Before timing, the script checks that all three models have the same parameter count, that the
chemprune model copied from the PyG model (``from_pyg``) gives PyG's outputs on the first batch
(max abs diff < 1e-4), that the chemprune copy of the schnetpack model does the same, and that
schnetpack's batches hold the same molecules, targets and neighbour pairs; it exits otherwise.

``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch is imported: with OpenMP's
default spin-waiting, small CPU steps on 2 threads are many times slower (ENVIRONMENT.md, trap 7).

Run (from the repository root)::

    .venv/bin/python benchmarks/schnet_throughput.py              # 2048 molecules, ~5 min
    .venv/bin/python benchmarks/schnet_throughput.py --quick      # smoke run, a few seconds
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from harness import loadavg, pyplot, save_figure, timestamp, write_results  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from chemprune.molecules.data.batching import MoleculeBatch, MoleculeSet, batch_indices  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.molecules.interop.pyg import from_pyg, make_pyg_schnet  # noqa: E402
from chemprune.molecules.interop.schnetpack import (  # noqa: E402
    SchnetpackMolecules,
    from_schnetpack,
    import_schnetpack,
    make_schnetpack_schnet,
    schnetpack_transforms,
)
from chemprune.molecules.models.graph import radius_pairs  # noqa: E402

HPARAMS = {"hidden": 128, "filters": 128, "interactions": 6, "gaussians": 50, "cutoff": 5.0}
EXPECTED_PARAMS = 455_809
COLUMNS = {
    "train_model": "train model-only",
    "train_data": "train incl. data",
    "infer_model": "infer model-only",
    "infer_data": "infer incl. data",
}
TOLERANCE = 1e-4
LR = 5e-4


@dataclass
class Impl:
    """One implementation: its model, how to predict and how to get batches."""

    name: str
    model: nn.Module
    predict: Callable[[Any], Tensor]
    target: Callable[[Any], Tensor]
    precollated: list[Any]
    loader: Callable[[list[Tensor]], Iterable[Any]]
    optimizer: torch.optim.Optimizer | None = None

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- set-up
def sample_molecules(num: int, seed: int) -> tuple[MoleculeSet, np.ndarray]:
    """A seeded random sample of QM9 as its own ``MoleculeSet`` (target: gap in eV)."""
    data = load_qm9()
    if num > len(data):
        raise SystemExit(f"--molecules {num} exceeds the {len(data)} molecules of QM9")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(data), size=num, replace=False))
    chosen = chosen[rng.permutation(num)]  # random order, fixed by the seed
    full = MoleculeSet(data.z, data.pos, data.ptr, data.target_values("gap"))
    sub = full.collate(chosen)
    ptr = np.zeros(num + 1, dtype=np.int64)
    np.cumsum(np.bincount(sub.batch.numpy(), minlength=num), out=ptr[1:])
    return MoleculeSet(sub.z, sub.pos, ptr, sub.y), data.ids[chosen]


def build_impls(mols: MoleculeSet, chunks: list[Tensor], seed: int, nbl: str) -> list[Impl]:
    h = HPARAMS
    torch.manual_seed(seed)
    pyg = make_pyg_schnet(
        hidden_channels=h["hidden"],
        num_filters=h["filters"],
        num_interactions=h["interactions"],
        num_gaussians=h["gaussians"],
        cutoff=h["cutoff"],
    )
    chemprune = from_pyg(pyg)  # same weights: checked against PyG before timing
    torch.manual_seed(seed)
    spk_model = make_schnetpack_schnet(
        n_atom_basis=h["hidden"],
        n_interactions=h["interactions"],
        n_rbf=h["gaussians"],
        cutoff=h["cutoff"],
        n_filters=h["filters"],
    )

    def collate_all(batches: list[Tensor]) -> Iterable[MoleculeBatch]:
        return (mols.collate(c) for c in batches)

    cp_batches = list(collate_all(chunks))

    spk = import_schnetpack()
    spk_data = SchnetpackMolecules(
        mols.z.numpy(),
        mols.pos.numpy(),
        mols.ptr.numpy(),
        mols.y.numpy(),
        transforms=schnetpack_transforms(h["cutoff"], nbl),
    )

    def spk_loader(batches: list[Tensor]) -> Iterable[dict[str, Tensor]]:
        return spk.data.AtomsLoader(
            spk_data, batch_sampler=[c.tolist() for c in batches], num_workers=0
        )

    return [
        Impl(
            name="chemprune",
            model=chemprune,
            predict=lambda b: chemprune(b.z, b.pos, b.batch, num_molecules=b.num_molecules),
            target=lambda b: b.y,
            precollated=cp_batches,
            loader=collate_all,
        ),
        Impl(
            name="PyG",
            model=pyg,
            predict=lambda b: pyg(b.z, b.pos, b.batch).squeeze(-1),
            target=lambda b: b.y,
            precollated=cp_batches,
            loader=collate_all,
        ),
        Impl(
            name="schnetpack",
            model=spk_model,
            # the model writes into its input dict: give it a fresh (shallow) copy
            predict=lambda b: spk_model(dict(b))["y"],
            target=lambda b: b["y"],
            precollated=list(spk_loader(chunks)),
            loader=spk_loader,
        ),
    ]


# ---------------------------------------------------------------------- checks
def check_params(impls: list[Impl]) -> dict[str, int]:
    counts = {impl.name: impl.params for impl in impls}
    if len(set(counts.values())) != 1:
        raise SystemExit(f"FAIL: parameter counts differ: {counts}")
    n = next(iter(counts.values()))
    if n != EXPECTED_PARAMS:
        raise SystemExit(f"FAIL: {n:,} parameters, expected {EXPECTED_PARAMS:,}")
    return counts


def _edge_set(i: Tensor, j: Tensor) -> set[tuple[int, int]]:
    return set(zip(i.tolist(), j.tolist(), strict=True))


@torch.no_grad()
def check_outputs(impls: list[Impl], cutoff: float) -> dict[str, float]:
    """Same outputs (chemprune vs PyG, chemprune copy vs schnetpack), same data and graph."""
    cp, pyg, spk = impls
    for impl in impls:
        impl.model.eval()
    b, sb = cp.precollated[0], spk.precollated[0]
    diffs = {}
    diffs["chemprune_vs_pyg"] = float((cp.predict(b) - pyg.predict(b)).abs().max())
    spk_copy = from_schnetpack(spk.model)
    y_copy = spk_copy(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
    diffs["chemprune_copy_vs_schnetpack"] = float((y_copy - spk.predict(sb)).abs().max())
    for key, d in diffs.items():
        if not d < TOLERANCE:
            raise SystemExit(f"FAIL: {key}: max abs diff {d:.3g} >= {TOLERANCE:g} on batch 0")

    if not (torch.equal(sb["_atomic_numbers"], b.z) and torch.equal(sb["_idx_m"], b.batch)):
        raise SystemExit("FAIL: schnetpack's first batch holds different molecules")
    if not torch.allclose(sb["y"], b.y):
        raise SystemExit("FAIL: schnetpack's first batch has different targets")
    pairs = radius_pairs(b.pos, b.batch, cutoff)
    ours = _edge_set(torch.cat([pairs[0], pairs[1]]), torch.cat([pairs[1], pairs[0]]))
    theirs = _edge_set(sb["_idx_i"], sb["_idx_j"])
    pos64 = b.pos.double()
    for i, j in ours ^ theirs:  # only pairs at the cutoff (rounding) may differ
        d = float((pos64[i] - pos64[j]).norm())
        if abs(d - cutoff) > 1e-3:
            raise SystemExit(f"FAIL: neighbour pair ({i}, {j}) at {d:.4f} A differs")
    diffs["neighbour_pairs_differing"] = len(ours ^ theirs)
    return diffs


def count_edges(impls: list[Impl], cutoff: float) -> dict[str, float]:
    """Directed edges per molecule seen by each implementation."""
    cp, _, spk = impls
    n_mol = sum(b.num_molecules for b in cp.precollated)
    ours = sum(2 * radius_pairs(b.pos, b.batch, cutoff).size(1) for b in cp.precollated)
    theirs = sum(int(b["_idx_i"].numel()) for b in spk.precollated)
    return {"chemprune_pyg": ours / n_mol, "schnetpack": theirs / n_mol}


# ---------------------------------------------------------------------- timing
def run_batches(impl: Impl, batches: Iterable[Any], train: bool) -> int:
    """Run one pass; returns the number of molecules processed."""
    n = 0
    if train:
        impl.model.train()
        opt = impl.optimizer
        for b in batches:
            opt.zero_grad(set_to_none=True)
            y = impl.target(b)
            loss = F.mse_loss(impl.predict(b), y)
            loss.backward()
            opt.step()
            n += y.numel()
    else:
        impl.model.eval()
        with torch.inference_mode():
            for b in batches:
                n += impl.predict(b).numel()
    return n


def batches_for(impl: Impl, column: str, chunks: list[Tensor], count: int | None = None):
    """The batches of a pass (the first ``count`` only, for warm-up)."""
    if column.endswith("_model"):
        return impl.precollated[:count]
    return impl.loader(chunks[:count])


def measure(
    impls: list[Impl], chunks: list[Tensor], repeats: int, warmup: int, num_molecules: int
) -> dict[str, dict[str, list[float]]]:
    passes: dict[str, dict[str, list[float]]] = {i.name: {c: [] for c in COLUMNS} for i in impls}
    for impl in impls:
        impl.optimizer = torch.optim.Adam(impl.model.parameters(), lr=LR)
        for column in COLUMNS:
            run_batches(impl, batches_for(impl, column, chunks, warmup), column.startswith("train"))
    for rep in range(repeats):
        order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
        for column in COLUMNS:
            for impl in order:
                train = column.startswith("train")
                t0 = time.perf_counter()
                n = run_batches(impl, batches_for(impl, column, chunks), train)
                dt = time.perf_counter() - t0
                if n != num_molecules:
                    raise SystemExit(f"FAIL: {impl.name} saw {n} molecules, not {num_molecules}")
                passes[impl.name][column].append(n / dt)
                log(
                    f"  repeat {rep + 1}/{repeats} {impl.name:10s} {column:12s} {n / dt:9.1f} mol/s"
                )
    return passes


# ---------------------------------------------------------------------- report
def summarise(passes: dict[str, dict[str, list[float]]], params: dict[str, int]) -> dict:
    medians = {
        name: {c: statistics.median(v) for c, v in cols.items()} for name, cols in passes.items()
    }
    ratios = {}
    for c in [*COLUMNS, "params"]:
        others = {
            n: (params[n] if c == "params" else medians[n][c]) for n in medians if n != "chemprune"
        }
        best = max(others, key=others.get)
        mine = params["chemprune"] if c == "params" else medians["chemprune"][c]
        ratios[c] = {"vs": best, "ratio": mine / others[best]}
    return {"median_mol_per_s": medians, "ratios_chemprune_vs_fastest_other": ratios}


def format_table(summary: dict, params: dict[str, int]) -> str:
    med = summary["median_mol_per_s"]
    head = f"{'implementation':24s}" + "".join(f"{t:>20s}" for t in COLUMNS.values())
    head += f"{'parameters':>12s}"
    lines = [head, "-" * len(head)]
    for name, cols in med.items():
        row = f"{name:24s}" + "".join(f"{cols[c]:20.1f}" for c in COLUMNS)
        lines.append(row + f"{params[name]:12,d}")
    lines.append("-" * len(head))
    rat = summary["ratios_chemprune_vs_fastest_other"]
    cells = [f"{rat[c]['ratio']:.2f}x ({rat[c]['vs']})" for c in [*COLUMNS, "params"]]
    lines.append(
        f"{'chemprune / fastest other':24s}"
        + "".join(f"{s:>20s}" for s in cells[:-1])
        + f"{cells[-1].split()[0]:>12s}"
    )
    lines.append("(molecules/s, median over repeats; ratio > 1: chemprune is faster)")
    return "\n".join(lines)


def plot(passes: dict, summary: dict, meta: dict, path: Path) -> None:
    plt = pyplot()
    med = summary["median_mol_per_s"]
    names = list(med)
    x = np.arange(len(COLUMNS))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for k, name in enumerate(names):
        vals = np.array([med[name][c] for c in COLUMNS])
        lo = vals - np.array([min(passes[name][c]) for c in COLUMNS])
        hi = np.array([max(passes[name][c]) for c in COLUMNS]) - vals
        bars = ax.bar(
            x + (k - (len(names) - 1) / 2) * width,
            vals,
            width,
            yerr=[lo, hi],
            capsize=3,
            label=name,
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
    ax.set_xticks(x, list(COLUMNS.values()))
    ax.set_ylabel("molecules / s (median; bars: min-max)")
    ax.set_title(
        f"SchNet 128/128/6/50/5 A on QM9, {meta['molecules']} molecules, batch "
        f"{meta['batch_size']}, {meta['threads']} thread(s), torch {meta['torch']}",
        fontsize=10,
    )
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"torch": torch.__version__, "python": platform.python_version()}
    from importlib import metadata

    for pkg in ("torch_geometric", "schnetpack", "matscipy", "ase", "numpy"):
        try:
            out[pkg] = metadata.version(pkg.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    info["loadavg_start"] = loadavg()
    return info


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--molecules", type=int, default=None, help="default 2048 (quick: 64)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32 (quick: 16)")
    ap.add_argument("--threads", type=int, default=None, help="default 2 (quick: 1)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (quick: 1)")
    ap.add_argument(
        "--warmup", type=int, default=None, help="warm-up batches, default 5 (quick: 1)"
    )
    ap.add_argument("--seed", type=int, default=0, help="molecule sample and model init")
    ap.add_argument(
        "--neighbor-list",
        choices=["matscipy", "ase"],
        default="matscipy",
        help="schnetpack's per-sample neighbour-list transform (default: matscipy, as its QM9 "
        "config)",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/schnet_throughput.json"))
    ap.add_argument("--plot", type=Path, default=Path("benchmarks/results/schnet_throughput.png"))
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    args = ap.parse_args(argv)
    defaults = {"molecules": 2048, "batch_size": 32, "threads": 2, "repeats": 3, "warmup": 5}
    quick = {"molecules": 64, "batch_size": 16, "threads": 1, "repeats": 1, "warmup": 1}
    for key, value in (quick if args.quick else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("molecules", "batch_size", "threads", "repeats"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        log(f"warning: OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; timings may suffer")

    t0 = time.perf_counter()
    mols, ids = sample_molecules(args.molecules, args.seed)
    chunks = batch_indices(np.arange(args.molecules), args.batch_size)
    impls = build_impls(mols, chunks, args.seed, args.neighbor_list)
    params = check_params(impls)
    checks = check_outputs(impls, HPARAMS["cutoff"])
    edges = count_edges(impls, HPARAMS["cutoff"])
    log(
        f"set-up {time.perf_counter() - t0:.1f} s; {params['chemprune']:,} parameters each; "
        f"checks passed: {checks}"
    )

    host = machine()
    passes = measure(impls, chunks, args.repeats, args.warmup, args.molecules)
    summary = summarise(passes, params)
    meta = {
        "benchmark": "schnet_throughput",
        "timestamp": timestamp(),
        **versions(),
        "threads": args.threads,
        "interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "molecules": args.molecules,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "warmup_batches": args.warmup,
        "seed": args.seed,
        "quick": args.quick,
        "target": "gap (eV)",
        "optimizer": f"Adam(lr={LR})",
        "loss": "MSE",
        "hyperparameters": HPARAMS,
        "schnetpack_neighbor_list": args.neighbor_list,
        "atoms_per_molecule": float(mols.counts.float().mean()),
        "directed_edges_per_molecule": edges,
        "machine": host,
    }
    meta["machine"]["loadavg_end"] = loadavg()
    table = format_table(summary, params)
    print(table)

    result = {
        **meta,
        "parameters": params,
        "checks": checks,
        **summary,
        "passes_mol_per_s": passes,
        "qm9_ids_in_batch_order": [int(i) for i in ids],
    }
    write_results(args.out, result, indent=2)
    plot(passes, summary, meta, args.plot)
    log(f"wrote {args.out} and {args.plot} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
