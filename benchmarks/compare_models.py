"""Side-by-side comparison of chemprune checkpoints of one target (e.g. dense vs pruned), CPU.

For each ``--models`` checkpoint (the first is the reference): test MAE on the test molecules of
the first model's own split (all models must predict the same target), parameters, MACs on 64
test molecules, saved file size, and CPU inference molecules/s at batch 1 and 64 (``--threads``,
models interleaved, median of ``--repeats`` passes; the same timing code as ``qm9_prune.py``),
once per ``--runtimes`` entry (``eager``, ``torchscript``: the frozen graph ``chemprune export``
writes); speedups are against the first model in eager mode.
Prints a table, writes JSON and a bar plot (PNG). OMP_WAIT_POLICY=PASSIVE is set before torch.

    .venv/bin/python benchmarks/compare_models.py \\
        --models models/schnet_gap_small.pt models/schnet_gap_small_pruned.pt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import environment, finish, header, pyplot, save_figure, write_results  # noqa: E402
from qm9_prune import measure_speed, static_stats, timing_batches  # noqa: E402

from chemprune.common.atomic import atomic_save  # noqa: E402
from chemprune.deploy.runtime import RUNTIMES, with_runtime  # noqa: E402
from chemprune.molecules.checkpoint import load_model, model_checkpoint  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.pipeline.compress_schnet import split_from_checkpoint  # noqa: E402
from chemprune.pipeline.evaluate import evaluate_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, nargs="+", required=True, help="reference first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--runtimes",
        type=lambda s: s.split(","),
        default=["eager", "torchscript"],
        help="comma-separated: eager, torchscript (default both)",
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--time-mol64", type=int, default=1024, help="test molecules timed at batch 64")
    p.add_argument("--time-mol1", type=int, default=256, help="test molecules timed at batch 1")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/compare_models.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/compare_models.png")
    args = p.parse_args(argv)
    args.device = "cpu"
    bad = [r for r in args.runtimes if r not in RUNTIMES]
    if bad:
        p.error(f"unknown runtimes {bad}; choose from {', '.join(RUNTIMES)}")
    return args


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    names = [f"{Path(r['model']).stem}\n{r['runtime']}" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, label in zip(
        axes,
        ("test_mae", "mol_per_s_b64", "params"),
        (f"test MAE ({rows[0]['unit']})", "molecules/s, CPU batch 64", "parameters"),
        strict=True,
    ):
        ax.bar(names, [r[key] for r in rows], color=["0.5"] + ["C0"] * (len(rows) - 1))
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    env = environment(args.threads)
    data = load_qm9()
    loaded = [load_model(p) for p in args.models]
    ref_ckpt = loaded[0][1]
    target = ref_ckpt["target"]
    others = {c["target"]["name"] for _, c in loaded} - {target["name"]}
    if others:
        raise SystemExit(f"all models must predict {target['name']}, not {sorted(others)}")
    split = split_from_checkpoint(ref_ckpt, len(data))
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(target["name"]))
    rows, modules = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (path, (model, _)) in enumerate(zip(args.models, loaded, strict=True)):
            saved = Path(tmp) / f"m{k}.pt"
            atomic_save(model_checkpoint(model, target=target), saved)
            stats = static_stats(model, (mset, mset), split, saved)
            for runtime in args.runtimes:
                module = with_runtime(model, runtime)
                test = stats["test_mae"]
                if runtime != "eager":  # the same molecules through the compiled graph
                    test = evaluate_model(module, mset, split.test)["mae"]
                row = {"model": str(path), "runtime": runtime, "unit": target["unit"], **stats}
                rows.append(row | {"test_mae": test})
                modules.append(module)
    speeds = measure_speed(modules, timing_batches(mset, split, args), args)
    for row, sp in zip(rows, speeds, strict=True):
        row.update(sp)
        for bs in (1, 64):
            row[f"speedup_b{bs}"] = row[f"mol_per_s_b{bs}"] / rows[0][f"mol_per_s_b{bs}"]
        row["file_bytes_on_disk"] = Path(row["model"]).stat().st_size
    head = (
        f"{'model':<36} {'runtime':<11} {'test MAE':>9} {'params':>8} {'MMACs/64':>9} {'file KB':>8} "
        f"{'mol/s b1':>9} {'mol/s b64':>9} {'x b1':>6} {'x b64':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{Path(r['model']).name:<36} {r['runtime']:<11} {r['test_mae']:>9.4f} {r['params']:>8,d} "
            f"{r['macs_per_batch64'] / 1e6:>9.1f} {r['file_bytes_on_disk'] / 1024:>8.1f} "
            f"{r['mol_per_s_b1']:>9.1f} {r['mol_per_s_b64']:>9.1f} "
            f"{r['speedup_b1']:>6.2f} {r['speedup_b64']:>6.2f}"
        )
    lines.append(
        f"(test MAE in {target['unit']} on the {len(split.test)} test molecules of the first "
        f"model's split; {args.threads} CPU threads, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY')}; speedups vs the first model in the first "
        "runtime, same run)"
    )
    text = "\n".join(lines)
    print(text)
    finish(env)
    result = {
        **header("compare_models", args, program="python"),
        **env,
        "rows": rows,
        "table": text,
        "seconds": time.perf_counter() - t0,
    }
    result["settings"]["models"] = [str(m) for m in args.models]
    write_results(args.out, result)
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
