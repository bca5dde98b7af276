"""Tabulated filters: accuracy and CPU speed against the exact model and its PyG/schnetpack peers.

For each ``--models`` checkpoint (exact, i.e. with filter networks):

* the tabulated model is built and checked exactly as ``chemprune tabulate`` does
  (:func:`chemprune.deploy.tabulate.tabulate_and_check`: max/mean ``|dE|`` on ``--molecules``
  validation molecules, the float32 floor, max ``|dF|`` on ``--force-molecules`` molecules; the
  smallest knot count from 128 up that passes the default criterion);
* molecules/s at batch 64 and 1 on the model's test molecules, for every thread count in
  ``--threads`` (models interleaved within each repeat, median of ``--repeats`` passes,
  batches collated beforehand): exact eager, exact TorchScript (frozen), tabulated eager,
  tabulated TorchScript, tabulated ``compiled`` (``torch.compile`` of the per-atom part, see
  :mod:`chemprune.deploy.runtime`; compile time reported), and for the first model PyG's and
  schnetpack's SchNet carrying the same weights (their outputs checked against chemprune's
  before timing);
* speedups against the exact eager model at the same threads and batch size.

Prints a table, writes JSON (rows as they finish) and a PNG. ``OMP_WAIT_POLICY=PASSIVE`` is set
before torch is imported; the load average is recorded at start and end.

    .venv/bin/python benchmarks/tabulated_speed.py \\
        --models benchmarks/parents/qm9_prune_gap_128x6_20k.pt models/schnet_gap_small.pt \\
        --threads 1,2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import environment, finish, pyplot, save_figure, write_results  # noqa: E402
from qm9_prune import measure_speed  # noqa: E402
from torch import nn  # noqa: E402

from chemprune.deploy.runtime import CompiledRuntime, compile_for_inference  # noqa: E402
from chemprune.deploy.tabulate import TabulateSettings, tabulate_and_check  # noqa: E402
from chemprune.molecules.checkpoint import load_model  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.molecules.models.schnet import SchNet  # noqa: E402
from chemprune.pipeline.compress_schnet import split_from_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", type=Path, nargs="+",
        default=[ROOT / "benchmarks/parents/qm9_prune_gap_128x6_20k.pt",
                 ROOT / "models/schnet_gap_small.pt"],
    )  # fmt: skip
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--knots", type=int, default=None, help="fixed knots (default: searched)")
    p.add_argument("--molecules", type=int, default=2000)
    p.add_argument("--force-molecules", type=int, default=100)
    p.add_argument("--time-mol64", type=int, default=1024)
    p.add_argument("--time-mol1", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-peers", action="store_true", help="skip PyG and schnetpack")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled runtime")
    p.add_argument(
        "--knot-sweep", type=lambda t: [int(x) for x in t.split(",") if x], default=[],
        help="knot counts whose accuracy and tabulated-eager speed (batch 64, first thread "
        "count) are measured for the first model, e.g. 64,128,256,512,1024,2048",
    )  # fmt: skip
    p.add_argument(
        "--profile", action="store_true",
        help="also profile the tabulated eager model (torch.profiler, first thread count): "
        "where the time goes once the filter network is gone",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/tabulated_speed.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/tabulated_speed.png")
    p.add_argument("--quick", action="store_true", help="small counts, to check the script")
    args = p.parse_args(argv)
    if args.quick:
        args.molecules, args.force_molecules, args.repeats = 200, 10, 1
        args.time_mol64, args.time_mol1, args.threads = 128, 16, args.threads[:1]
    return args


# ---------------------------------------------------------------------- peers
class PygRunner(nn.Module):
    """PyG's SchNet with chemprune's weights, called like chemprune's."""

    def __init__(self, model: SchNet) -> None:
        super().__init__()
        from chemprune.molecules.interop.pyg import make_pyg_schnet

        if len(set(model.filter_channels)) != 1 or model.block_kinds != ["cfconv"] * len(
            model.interactions
        ):
            raise ValueError("PyG's SchNet has one filter width and cfconv blocks only")
        self.net = make_pyg_schnet(
            hidden_channels=model.hidden_channels, num_filters=model.filter_channels[0],
            num_interactions=len(model.interactions), num_gaussians=model.num_gaussians,
            cutoff=model.cutoff, readout="add" if model.readout == "sum" else "mean",
            mean=float(model.mean), std=float(model.std),
            atomref=model.atomref.reshape(-1, 1) if bool(model.atomref.any()) else None,
        )  # fmt: skip
        state = {}
        mine = model.state_dict()
        for key in self.net.state_dict():
            src = (
                key.replace(".mlp.0.", ".filter_network.lin1.")
                .replace(".mlp.2.", ".filter_network.lin2.")
                .replace(".conv.nn.0.", ".filter_network.lin1.")
                .replace(".conv.nn.2.", ".filter_network.lin2.")
                .replace(".conv.lin1.", ".in2f.")
                .replace(".conv.lin2.", ".f2out.")
            )
            if key.startswith("interactions.") and ".lin." in key:
                src = key.replace(".lin.", ".out.")
            src = {"distance_expansion.offset": "rbf.offset", "atomref.weight": "atomref"}.get(
                src, src
            )
            if key == "initial_atomref":
                state[key] = model.atomref.reshape(-1, 1)
                continue
            state[key] = mine[src].reshape(self.net.state_dict()[key].shape)
        self.net.load_state_dict(state, strict=True)

    def forward(self, z, pos, batch, num_molecules=None):
        return self.net(z, pos, batch).reshape(-1)


class SchnetpackRunner(nn.Module):
    """schnetpack's SchNet with chemprune's weights (output standardised as chemprune's:
    ``y * std + mean`` per atom; no atom references), called like chemprune's."""

    def __init__(self, model: SchNet) -> None:
        super().__init__()
        from chemprune.molecules.interop.schnetpack import make_schnetpack_schnet

        if bool(model.atomref.any()):
            raise ValueError("the schnetpack peer here carries no atom references")
        self.net = make_schnetpack_schnet(
            n_atom_basis=model.hidden_channels, n_interactions=len(model.interactions),
            n_rbf=model.num_gaussians, cutoff=model.cutoff, n_filters=model.filter_channels[0],
            aggregation="sum" if model.readout == "sum" else "avg",
        )  # fmt: skip
        rep, head = self.net.representation, self.net.output_modules[0]
        with torch.no_grad():
            rep.embedding.weight.copy_(model.embedding.weight)
            for src, dst in zip(model.interactions, rep.interactions, strict=True):
                for a, b in (
                    (src.in2f, dst.in2f), (src.filter_network.lin1, dst.filter_network[0]),
                    (src.filter_network.lin2, dst.filter_network[1]), (src.f2out, dst.f2out[0]),
                    (src.out, dst.f2out[1]),
                ):  # fmt: skip
                    b.weight.copy_(a.weight)
                    if a.bias is not None:
                        b.bias.copy_(a.bias)
            for a, b in ((model.lin1, head.outnet[0]), (model.lin2, head.outnet[1])):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
            # per-atom standardisation: out = lin2(.) * std + mean, folded into the last layer
            head.outnet[1].weight.mul_(model.std)
            head.outnet[1].bias.mul_(model.std).add_(model.mean)
        self.cutoff = model.cutoff

    def forward(self, z, pos, batch, num_molecules=None):
        from chemprune.molecules.interop.schnetpack import schnetpack_inputs

        inputs = schnetpack_inputs(z, pos, batch, cutoff=self.cutoff, num_molecules=num_molecules)
        return self.net(inputs)["y"]


# ---------------------------------------------------------------------- timing
def profile(model: nn.Module, batches: list, top: int = 10) -> list[dict]:
    """Self CPU time per ATen operation over ``batches`` (after two warm-up batches)."""
    from torch.profiler import profile as torch_profile

    with torch.inference_mode():
        for b in batches[:2]:
            model(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
        with torch_profile() as prof:
            for b in batches:
                model(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count}
        for e in events[:top]
    ]


def speeds(runners: dict[str, nn.Module], batches: dict[int, list], args) -> dict:
    """Molecules/s per runner and batch size: ``qm9_prune.measure_speed`` (warm-up, median of
    ``--repeats`` passes, runners interleaved within each repeat)."""
    return dict(zip(runners, measure_speed(list(runners.values()), batches, args), strict=True))


def knot_sweep(model, tab, mset, split, report, b64, args) -> list[dict]:
    """Accuracy (as the check measures it) and tabulated-eager speed at batch 64 per knot count,
    timed interleaved with the exact model."""
    from chemprune.deploy.tabulate import check_tabulated
    from chemprune.molecules.predict import predict_indices

    torch.set_num_threads(args.threads[0])
    idx = split.val[: args.molecules]
    exact_pred = predict_indices(model, mset, idx, 128).double()
    settings = TabulateSettings(molecules=args.molecules, force_molecules=args.force_molecules)
    rows = []
    for k in args.knot_sweep:
        t = model.tabulated(k).eval()
        row = check_tabulated(
            model, t, mset, idx, exact_pred=exact_pred, settings=settings,
            floor=report["float32_floor"], val_mae=report["exact_val_mae"],
        )  # fmt: skip
        rates = speeds({"exact": model, "tab": t}, {64: b64}, args)
        row["mol_per_s_b64"] = rates["tab"]["mol_per_s_b64"]
        row["speedup_b64"] = rates["tab"]["mol_per_s_b64"] / rates["exact"]["mol_per_s_b64"]
        print(
            f"  {k:5d} knots: max|dE| {row['max_abs_dE']:.2e} mean|dE| {row['mean_abs_dE']:.2e} "
            f"max|dF| {row['max_abs_dF']:.2e} passed={row['passed']} b64 {row['speedup_b64']:.2f}x",
            flush=True,
        )
        rows.append(row)
    return rows


def run_model(path: Path, data, args, peers: bool) -> dict:
    model, ckpt = load_model(path)
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(ckpt["target"]["name"]))
    split = split_from_checkpoint(ckpt, len(mset))
    torch.set_num_threads(args.threads[0])
    settings = TabulateSettings(
        knots=args.knots, molecules=args.molecules, force_molecules=args.force_molecules,
        time_molecules=0,
    )  # fmt: skip
    tab, report = tabulate_and_check(model, mset, split.val, settings)
    print(
        f"{path.name}: {report['knots']} knots ({report['table_bytes'] / 1e6:.2f} MB), "
        f"max|dE| {report['max_abs_dE']:.2e} mean|dE| {report['mean_abs_dE']:.2e} "
        f"(floor {report['float32_floor']['max']:.2e}, MAE {report['exact_val_mae']:.4f}), "
        f"max|dF| {report['max_abs_dF']:.2e}",
        flush=True,
    )
    runners: dict[str, nn.Module] = {
        "exact eager": model,
        "exact torchscript": compile_for_inference(model),
        "tabulated eager": tab,
        "tabulated torchscript": compile_for_inference(tab),
    }
    compile_s = None
    test = split.test
    b64 = [mset.collate(test[i : i + 64]) for i in range(0, min(args.time_mol64, len(test)), 64)]
    b1 = [mset.collate(test[i : i + 1]) for i in range(min(args.time_mol1, len(test)))]
    if not args.no_compile:
        comp = CompiledRuntime(tab)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b in (b64[0], b1[0]):
                comp(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
        compile_s = time.perf_counter() - t0
        runners["tabulated compiled"] = comp
    check = {}
    if peers:
        runners["PyG"] = PygRunner(model).eval()
        runners["schnetpack"] = SchnetpackRunner(model).eval()
    b = b64[0]
    with torch.no_grad():
        ref = model(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
        for name, r in runners.items():
            out = r(b.z, b.pos, b.batch, num_molecules=b.num_molecules)
            check[name] = float((out - ref).abs().max())
            tol = (
                1e-4
                if name.startswith(("exact", "PyG", "schnet"))
                else 10 * report["limits"].get("max_abs_dE", 1e-3)
            )
            if check[name] > max(tol, 1e-4):
                raise SystemExit(f"{name} differs from the exact model by {check[name]:.3g}")
    sweep = []
    if args.knot_sweep and peers:  # the first model only
        sweep = knot_sweep(model, tab, mset, split, report, b64, args)
    profiles = {}
    if args.profile:
        torch.set_num_threads(args.threads[0])
        profiles = {"b64": profile(tab, b64[:8]), "b1": profile(tab, b1[:64])}
        for key, ops in profiles.items():
            print(f"tabulated eager, {key}: " + ", ".join(
                f"{o['op'].removeprefix('aten::')} {o['share']:.0%}" for o in ops[:8]))  # fmt: skip
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        s = speeds(runners, {64: b64, 1: b1}, args)
        base = s["exact eager"]
        for name, v in s.items():
            rows.append({
                "runtime": name, "threads": threads, **v,
                "speedup_b64": v["mol_per_s_b64"] / base["mol_per_s_b64"],
                "speedup_b1": v["mol_per_s_b1"] / base["mol_per_s_b1"],
                "max_abs_diff_first_batch": check[name],
            })  # fmt: skip
    report.pop("settings", None)
    return {
        "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "architecture": repr(model),
        "target": ckpt["target"],
        "tabulation": report,
        "compile_s": compile_s,
        "profile_tabulated_eager": profiles,
        "knot_sweep": sweep,
        "rows": rows,
    }


def table(result: dict) -> str:
    lines = []
    for m in result["models"]:
        lines.append(f"\n{m['model']}  ({m['tabulation']['knots']} knots)")
        lines.append(
            f"{'runtime':>22} {'thr':>3} {'b64 mol/s':>10} {'x':>6} {'b1 mol/s':>9} {'x':>6}"
        )
        for r in m["rows"]:
            lines.append(
                f"{r['runtime']:>22} {r['threads']:3d} {r['mol_per_s_b64']:10.0f} "
                f"{r['speedup_b64']:6.2f} {r['mol_per_s_b1']:9.0f} {r['speedup_b1']:6.2f}"
            )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    models = result["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.4 * len(models)), squeeze=False)
    for row, m in enumerate(models):
        threads = sorted({r["threads"] for r in m["rows"]})
        names = list(dict.fromkeys(r["runtime"] for r in m["rows"]))
        for col, key in enumerate(("speedup_b64", "speedup_b1")):
            ax = axes[row][col]
            width = 0.8 / len(threads)
            for t_i, t in enumerate(threads):
                vals = [next(r[key] for r in m["rows"] if r["runtime"] == n and r["threads"] == t)
                        for n in names]  # fmt: skip
                ax.bar([i + t_i * width for i in range(len(names))], vals, width,
                       label=f"{t} thread(s)")  # fmt: skip
            ax.axhline(1.0, color="k", lw=0.5)
            ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(names))])
            ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
            ax.set_ylabel(f"x exact eager, batch {key[-2:].strip('b')}")
            ax.set_title(f"{Path(m['model']).name}: {m['tabulation']['knots']} knots", fontsize=9)
            ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_qm9()
    result = {
        "benchmark": "tabulated_speed",
        "environment": environment(args.threads),
        "models": [],
    }
    for i, path in enumerate(args.models):
        result["models"].append(run_model(path, data, args, peers=i == 0 and not args.no_peers))
        print(table({"models": result["models"][-1:]}), flush=True)
        if not args.quick:
            write_results(args.out, result)
    finish(result["environment"])
    if not args.quick:
        write_results(args.out, result)
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
