"""NVE molecular dynamics with exact vs tabulated SchNet filters (ASE VelocityVerlet, CPU).

For each ``--models`` checkpoint and each of ``--molecules`` QM9 molecules (the first rows of the
model's validation split with ``--heavy-atoms`` heavy atoms, or ``--rows``), two runs of
``--steps`` VelocityVerlet steps of ``--dt`` fs start from the same QM9 geometry and the same
Maxwell-Boltzmann velocities (``--temperature`` K, exactly that temperature, ``--seed``; net
momentum and rotation removed): (a) the exact model and (b) ``model.tabulated(--knots)``, whose
continuous filters ``W(d) * fcut(d)`` are read from cubic Hermite tables (forces by autograd
through the interpolation). Both go through ``chemprune.deploy.ase.SchNetCalculator``.

The models predict the HOMO-LUMO gap, not an energy: the "potential" is the model's output (eV)
and the forces its negative gradient. This is not physical dynamics; it tests the numerical
behaviour of the calculator (is the model's output a smooth, conservative potential for the
integrator, and does tabulation change that?), which is what is compared between exact and
tabulated. The gap surface is not bound: free dynamics at 0.5 fs collapses within a few hundred
steps (atoms closer than 0.5 A; the gap falls and the kinetic energy rises to ~2000 K). So each
atom is tethered to its starting position by a harmonic spring (``--tether`` k in eV/A^2,
0.5 k |r - r0|^2, in float64, the same for both variants; 0 = free dynamics), and the default
step is 0.1 fs: at 0.5 fs the tethered runs already lose 0.1-0.4 eV (the gap surface has
stiff directions, with vibrational periods of ~8 fs at the start and shorter ones along the way),
while 0.1 fs resolves them. 5,000 steps of 0.1 fs span the same 0.5 ps as 1,000 of 0.5 fs.

Reported per model / molecule / variant: total-energy drift (least-squares slope of
E_total = model output + tether + kinetic over time, eV/ps), max |E_total(t) - E_total(0)| (eV),
the max force difference exact vs tabulated at the starting geometry (eV/A, model forces only),
the RMS distance between the two runs' final positions (A; the dynamics is chaotic, so it grows
with time even for tiny force differences), wall time per MD step (ms), the mean temperature.
A run stopped by the calculator's geometry check (atoms closer than 0.5 A) or a non-finite value
reports the steps it completed. Prints a table, writes JSON and a PNG of E_total(t) - E_total(0)
(one panel per model; exact solid, tabulated dashed). OMP_WAIT_POLICY=PASSIVE is set before torch.

    .venv/bin/python benchmarks/tabulate_md.py
    .venv/bin/python benchmarks/tabulate_md.py --quick   # 50 steps, 1 molecule, first model
    .venv/bin/python benchmarks/tabulate_md.py --dt 0.5 --steps 1000 --tether 0   # free, 0.5 fs
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.md.velocitydistribution import (  # noqa: E402
    Stationary,
    ZeroRotation,
    thermalize_momenta,
)
from ase.md.verlet import VelocityVerlet  # noqa: E402
from harness import PACKAGES, environment, finish, header, pyplot, save_figure, write_results  # noqa: E402

from chemprune.deploy.ase import SchNetCalculator  # noqa: E402
from chemprune.deploy.runtime import RUNTIMES  # noqa: E402
from chemprune.molecules.checkpoint import load_model  # noqa: E402
from chemprune.molecules.chem.structures import StructureError  # noqa: E402
from chemprune.molecules.data.qm9 import QM9Data, load_qm9  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [
    ROOT / "models/schnet_gap_small.pt",
    ROOT / "benchmarks/parents/qm9_prune_gap_128x6_20k.pt",
]
MAX_SERIES = 1000  # points of each E_total(t) series kept in the JSON


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, nargs="+", default=DEFAULT_MODELS)
    p.add_argument("--molecules", type=int, default=3, help="molecules per model")
    p.add_argument(
        "--rows", type=int, nargs="+", default=None,
        help="QM9 (qm9pack) row indices to use instead of the validation-split choice",
    )  # fmt: skip
    p.add_argument("--heavy-atoms", type=int, default=9, help="heavy atoms of the chosen molecules")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--dt", type=float, default=0.1, help="time step, fs")
    p.add_argument("--temperature", type=float, default=300.0, help="initial temperature, K")
    p.add_argument("--tether", type=float, default=30.0, help="spring to r0, eV/A^2 (0: none)")
    p.add_argument("--knots", type=int, default=512)
    p.add_argument("--seed", type=int, default=0, help="velocities (same for both variants)")
    p.add_argument("--runtime", default="eager", help=f"calculator runtime: {', '.join(RUNTIMES)}")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="50 steps, 1 molecule, first model")
    p.add_argument(
        "--out", type=Path, default=None, help="default results/tabulate_md[_quick].json"
    )
    p.add_argument(
        "--plot", type=Path, default=None, help="default results/tabulate_md[_quick].png"
    )
    args = p.parse_args(argv)
    if args.runtime not in RUNTIMES:
        p.error(f"unknown runtime {args.runtime!r}; choose from {', '.join(RUNTIMES)}")
    if args.quick:
        args.steps, args.molecules, args.models = 50, 1, args.models[:1]
        args.rows = None if args.rows is None else args.rows[:1]
    stem = "tabulate_md_quick" if args.quick else "tabulate_md"
    args.out = args.out or ROOT / f"benchmarks/results/{stem}.json"
    args.plot = args.plot or ROOT / f"benchmarks/results/{stem}.png"
    return args


class Tethered(Calculator):
    """``inner``'s energy and forces plus ``0.5 * k * |r - r0|^2`` per atom (float64)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator, anchor: np.ndarray, k: float) -> None:
        super().__init__()
        self.inner = inner
        self.anchor = np.array(anchor, dtype=np.float64)
        self.k = float(k)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.inner.calculate(self.atoms, ["energy", "forces"], all_changes)
        energy = float(self.inner.results["energy"])
        forces = np.array(self.inner.results["forces"], dtype=np.float64)
        if self.k:
            d = self.atoms.positions - self.anchor
            energy += 0.5 * self.k * float((d * d).sum())
            forces -= self.k * d
        self.results = {"energy": energy, "forces": forces}


def shown(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def pick_rows(ckpt: dict[str, Any], data: QM9Data, args: argparse.Namespace) -> list[int]:
    if args.rows is not None:
        return list(args.rows)
    split = (ckpt.get("data") or {}).get("split") or {}
    if "val" not in split:
        raise SystemExit("the checkpoint has no validation split; pass --rows")
    heavy = np.add.reduceat((data.z > 1).astype(np.int64), data.ptr[:-1])
    rows = [int(i) for i in np.asarray(split["val"]) if heavy[int(i)] == args.heavy_atoms]
    if len(rows) < args.molecules:
        raise SystemExit(
            f"only {len(rows)} validation molecules with {args.heavy_atoms} heavy atoms"
        )
    return rows[: args.molecules]


def run_md(calc, z, pos, args) -> dict[str, Any]:
    """One NVE run from ``pos`` with the seeded velocities; E_total at every step."""
    atoms = Atoms(numbers=z, positions=pos)
    thermalize_momenta(
        atoms, args.temperature, exact_temperature=True, rng=np.random.default_rng(args.seed)
    )
    Stationary(atoms)
    ZeroRotation(atoms)
    atoms.calc = Tethered(calc, pos, args.tether)
    energies: list[float] = []  # the observer is also called before the first step
    temps: list[float] = []
    md = VelocityVerlet(atoms, timestep=args.dt * units.fs)

    def record() -> None:
        energies.append(atoms.get_total_energy())
        temps.append(atoms.get_temperature())

    md.attach(record, interval=1)
    status = "ok"
    t0 = time.perf_counter()
    try:
        md.run(args.steps)
    except (StructureError, FloatingPointError) as err:
        status = f"stopped: {str(err).splitlines()[0]}"
    seconds = time.perf_counter() - t0
    steps = len(energies) - 1
    e = np.asarray(energies)
    t_ps = np.arange(len(e)) * args.dt / 1000.0
    slope = float(np.polyfit(t_ps, e, 1)[0]) if len(e) > 2 else float("nan")
    return {
        "status": status,
        "steps_done": steps,
        "drift_eV_per_ps": slope,
        "max_abs_dE_eV": float(np.abs(e - e[0]).max()),
        "ms_per_step": 1e3 * seconds / max(steps, 1),
        "temperature_mean_K": float(np.mean(temps)),
        "temperature_final_K": float(temps[-1]),
        "max_displacement_A": float(np.linalg.norm(atoms.positions - pos, axis=1).max()),
        "final_positions": atoms.positions.copy(),
        "dE": e - e[0],
    }


def start_forces(calc, z, pos) -> tuple[float, np.ndarray]:
    atoms = Atoms(numbers=z, positions=pos)
    atoms.calc = calc
    return float(atoms.get_potential_energy()), atoms.get_forces().copy()


def plot(runs: list[dict], models: list[str], args, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mols = list(dict.fromkeys(r["row"] for r in runs if r["model"] == model))
        for r in (r for r in runs if r["model"] == model):
            t_fs = np.arange(len(r["dE"])) * args.dt
            ax.plot(
                t_fs,
                r["dE"],
                color=f"C{mols.index(r['row'])}",
                ls="-" if r["variant"] == "exact" else "--",
                lw=1.0,
                label=f"{r['row']} {r['formula']} {r['variant']}",
            )
        ax.set_title(f"{Path(model).name}", fontsize=10)
        ax.set_xlabel("time (fs)")
        ax.set_ylabel("E_total(t) - E_total(0) (eV)")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"NVE VelocityVerlet, dt {args.dt} fs, {args.temperature:g} K start, tether "
        f"{args.tether:g} eV/A^2; potential = predicted gap (not an energy); "
        f"solid exact, dashed tabulated ({args.knots} knots)",
        fontsize=9,
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    env = environment(args.threads, packages=(*PACKAGES, "ase"))
    env["machine"]["torch_threads"] = torch.get_num_threads()
    data = load_qm9()
    runs: list[dict[str, Any]] = []
    for path in args.models:
        model, ckpt = load_model(path)
        model.eval()
        tab = model.tabulated(args.knots).eval()
        target = ckpt["target"]
        calcs = {
            v: SchNetCalculator(net, target=target, allow_non_energy=True, runtime=args.runtime)
            for v, net in (("exact", model), ("tabulated", tab))
        }
        for row in pick_rows(ckpt, data, args):
            z, pos = data.molecule(row)
            z, pos = np.asarray(z, dtype=np.int64), np.asarray(pos, dtype=np.float64)
            formula = Atoms(numbers=z).get_chemical_formula()
            (e_ex, f_ex), (e_tab, f_tab) = (start_forces(calcs[v], z, pos) for v in calcs)
            first = {
                "start_energy_diff_eV": abs(e_ex - e_tab),
                "start_max_force_diff_eV_A": float(np.abs(f_ex - f_tab).max()),
                "start_max_force_eV_A": float(np.abs(f_ex).max()),
            }
            pair = {}
            for variant, calc in calcs.items():
                res = run_md(calc, z, pos, args)
                pair[variant] = res
                info = {"model": shown(path), "row": row, "smiles": str(data.smiles[row])}
                runs.append(info | {"formula": formula, "atoms": len(z), "variant": variant} | res)
                print(
                    f"  {path.name} row {row} {formula} {variant}: {res['steps_done']} steps, "
                    f"{res['ms_per_step']:.2f} ms/step, {res['status']}",
                    file=sys.stderr,
                    flush=True,
                )
            a, b = pair["exact"], pair["tabulated"]
            same = a["steps_done"] == b["steps_done"]
            d = a["final_positions"] - b["final_positions"]
            rmsd = float(np.sqrt((d * d).sum(axis=1).mean())) if same else float("nan")
            for r in runs[-2:]:
                r.update(first, final_rmsd_A=rmsd)
    models = [shown(p) for p in args.models]
    head = (
        f"{'model':<30} {'QM9 row':>7} {'formula':<10} {'variant':<9} {'steps':>5} "
        f"{'drift eV/ps':>11} {'max|dE| eV':>10} {'|dF|0 eV/A':>10} {'|F|0':>6} "
        f"{'RMSD A':>8} {'ms/step':>7} {'<T> K':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(
            f"{Path(r['model']).name:<30} {r['row']:>7} {r['formula']:<10} {r['variant']:<9} "
            f"{r['steps_done']:>5} {r['drift_eV_per_ps']:>11.2e} {r['max_abs_dE_eV']:>10.2e} "
            f"{r['start_max_force_diff_eV_A']:>10.2e} {r['start_max_force_eV_A']:>6.2f} "
            f"{r['final_rmsd_A']:>8.1e} {r['ms_per_step']:>7.2f} {r['temperature_mean_K']:>6.0f}"
        )
    lines.append(
        f"(NVE VelocityVerlet, dt {args.dt} fs x {args.steps} steps, start {args.temperature:g} K "
        f"(seed {args.seed}), tether {args.tether:g} eV/A^2 to the start geometry; tabulated = "
        f"{args.knots} knots. The 'potential' is the predicted HOMO-LUMO gap, not an energy: this "
        "tests the calculator's numerics (energy conservation of the dynamics the model's output "
        "defines), not physics. drift: slope of E_total(t); |dF|0, |F|0: max force difference "
        "exact-tabulated and max exact force at the start; RMSD: final positions exact vs "
        f"tabulated; {args.threads} CPU thread(s), runtime {args.runtime})"
    )
    stopped = [r for r in runs if r["status"] != "ok"]
    for r in stopped:
        lines.append(f"{Path(r['model']).name} row {r['row']} {r['variant']}: {r['status']}")
    text = "\n".join(lines)
    print(text)
    finish(env)
    out_runs = []
    for r in runs:
        stride = max(1, -(-len(r["dE"]) // MAX_SERIES))
        keep = {k: v for k, v in r.items() if k not in ("dE", "final_positions")}
        keep["final_positions"] = r["final_positions"].tolist()
        keep |= {"dE_stride": stride, "dE_series_eV": r["dE"][::stride].tolist()}
        out_runs.append(keep)
    result = {
        **header("tabulate_md", args, program="python"),
        "note": "the models predict the HOMO-LUMO gap (eV), used as the potential: a test of the "
        "calculator's numerical behaviour (energy conservation), not physical dynamics",
        **env,
        "runs": out_runs,
        "table": text,
        "seconds": time.perf_counter() - t_start,
    }
    result["settings"]["models"] = models
    write_results(args.out, result)
    plot(runs, models, args, args.plot)
    print(f"wrote {args.out} and {args.plot} ({result['seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
