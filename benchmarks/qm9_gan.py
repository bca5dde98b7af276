"""Molecule GANs on QM9: one generator against K shared orthogonal ones, then compression (issue 19).

Rows, each trained with the same budget (``--steps`` critic steps, default 15,000, about 5
minutes on one thread; ``--minutes`` adds a time limit) and saved
as soon as it is done (``--work-dir/rows/<row>.{json,pt}``; a rerun skips it), seeds
``--seeds``:

=====================  =============================================================================
single_s<k>            MolGAN's recipe without the reward network: one generator, WGAN-GP
k4_plain_s<k>          K = 4 generators sharing all but their first layer (MGAN's sharing), no term
k4_cls_s<k>            + MGAN's generator classifier (``mgan``)
k4_orth_s<k>           + MGO-GAN's orthogonality term (``mgo_gan``)
k4_both_s<k>           + both
single_bf_s<k>         one generator, MolGAN's batch features in the critic (``--batch-features``)
single_pack2_s<k>      one generator, PacGAN with packs of 2 (``--pack``)
single_ms_s<k>         one generator, MSGAN's mode-seeking term (``--mode-seeking``)
k4_all_s<k>            K = 4, both MGAN terms, batch features and mode seeking (no pack: MGAN's
                       classifier head needs pack 1)
k4_all_pack2_s<k>      K = 4, orthogonality, batch features, packs of 2 and mode seeking
single_valence_s<k>    one generator, the valence/connectivity penalties (``--valence-weight 1``)
single_rl_s<k>         one generator, MolGAN's reward network for validity, lambda 0.5, after a
                       GAN-only half of the steps (``--rl-weight 0.5 --rl-warmup steps/2``)
k4_mgan_same_s<k>      K = 4, MGAN with its paper's beta 0.01 and its code's shared noise
                       (``--engine mgan --classifier-weight 0.01 --same-noise``)
content_<parent>       ``--compress-parent``'s generator, content-aware channel pruning to
                       ``--target-macs`` of its MACs, removed, distilled (``--finetune-steps``)
magnitude_<parent>     the same with uniform L1-magnitude channel pruning at the same MACs
=====================  =============================================================================

Every generator is scored on ``--samples`` samples (seed 0): validity, uniqueness, novelty
against its training molecules, internal diversity and FCD against 10,000 held-out QM9
molecules (:mod:`chemprune.engines.gan.metrics`' protocol), and each row records the coverage of
each of its generators (distinct valid molecules, those only it made, the union's); per method
the mean and spread over seeds; generation throughput (graphs/s of the
generator alone, batch 1,000, ``--threads``) for parent and compressed generators measured side
by side in the same process. Writes a table, ``--out`` (JSON), ``--plot`` and a grid of the best
row's molecules (``--grid``, RDKit drawings).

    .venv/bin/python benchmarks/qm9_gan.py --work-dir runs/qm9_gan --steps 15000   # ~2 h
    .venv/bin/python benchmarks/qm9_gan.py --methods single_bf,k4_all --seeds 0 --steps 3000
    .venv/bin/python benchmarks/qm9_gan.py --quick --data-dir <qm9 csv folder> --out /tmp/g.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from harness import RowStore, error_text, header, loadavg, pyplot, save_figure, write_results  # noqa: E402

from chemprune.engines.gan.base import sample_graphs  # noqa: E402
from chemprune.engines.gan.checkpoint import load_generator  # noqa: E402
from chemprune.pipeline.generate import (  # noqa: E402
    GANSettings,
    compress_gan,
    evaluate_samples,
    load_graphs,
    sample_smiles,
    train_gan,
)

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "single": {"engine": "wgan_gp", "generators": 1},
    "k4_plain": {"engine": "wgan_gp", "generators": 4},
    "k4_cls": {"engine": "mgan", "generators": 4},
    "k4_orth": {"engine": "mgo_gan", "generators": 4},
    "k4_both": {"engine": "mgo_gan", "generators": 4, "classifier_weight": 1.0},
    "single_bf": {"engine": "wgan_gp", "generators": 1, "batch_features": 16},
    "single_pack2": {"engine": "wgan_gp", "generators": 1, "pack": 2},
    "single_ms": {"engine": "wgan_gp", "generators": 1, "mode_seeking": 1.0},
    "k4_all": {"engine": "mgo_gan", "generators": 4, "classifier_weight": 1.0,
               "batch_features": 16, "mode_seeking": 1.0},
    "k4_all_pack2": {"engine": "mgo_gan", "generators": 4, "batch_features": 16, "pack": 2,
                     "mode_seeking": 1.0},
    "single_valence": {"engine": "wgan_gp", "generators": 1, "valence_weight": 1.0},
    # rl_warmup_fraction: the warm-up as a fraction of --steps (train_row turns it into steps)
    "single_rl": {"engine": "wgan_gp", "generators": 1, "rl_weight": 0.5,
                  "rl_warmup_fraction": 0.5, "reward": "validity"},
    "k4_mgan_same": {"engine": "mgan", "generators": 4, "classifier_weight": 0.01,
                     "same_noise": True},
    # the mode-seeking weight swept (single_ms is 1.0), and with validity help
    "single_ms01": {"engine": "wgan_gp", "generators": 1, "mode_seeking": 0.1},
    "single_ms03": {"engine": "wgan_gp", "generators": 1, "mode_seeking": 0.3},
    "single_ms03_valence": {"engine": "wgan_gp", "generators": 1, "mode_seeking": 0.3,
                            "valence_weight": 1.0},
    "single_ms03_rl": {"engine": "wgan_gp", "generators": 1, "mode_seeking": 0.3,
                       "rl_weight": 0.5, "rl_warmup_fraction": 0.5, "reward": "validity"},
}  # fmt: skip
#: the rows run unless ``--methods`` says otherwise (the issue-19 set)
DEFAULT_METHODS = ("single", "k4_plain", "k4_cls", "k4_orth", "k4_both")
METRICS = ("validity", "uniqueness", "novelty", "internal_diversity", "fcd")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_row(name: str, graphs, args) -> Path:
    variant, seed = name.rsplit("_s", 1)
    options = dict(VARIANTS[variant])
    if "rl_warmup_fraction" in options:
        options["rl_warmup"] = int(options.pop("rl_warmup_fraction") * args.steps)
    settings = GANSettings(
        **options, hidden=tuple(args.hidden), lr=args.lr, batch_size=args.batch_size,
        seed=int(seed), minibatch_std=args.minibatch_std,
    )  # fmt: skip
    run = Path(args.work_dir) / "runs" / name
    out = row_store(args).model_path(name)
    train_gan(
        graphs, run, out, settings=settings, steps=args.steps, minutes=args.minutes,
        resume=(run / "last.pt").exists(), progress=False, log=log,
    )  # fmt: skip
    return out


def row_store(args, log=None) -> RowStore:
    """``--work-dir/rows/<row>.{json,pt}``: the row's scores and its generator."""
    return RowStore(Path(args.work_dir) / "rows", log=log)


def score(path: Path, graphs, args) -> dict[str, Any]:
    gen, _, ckpt = load_generator(path)
    pairs = sample_smiles(gen, args.samples, seed=0, with_generator=True)
    samples = [s for s, _ in pairs]
    m = evaluate_samples(
        samples, graphs, fcd_reference=None if args.no_fcd else 10_000,
        generators=[k for _, k in pairs], num_generators=gen.num_generators,
    )  # fmt: skip
    per_gen = {  # each generator's own validity and distinct molecules (as before)
        r["generator"]: {"validity": r["valid"] / r["samples"] if r["samples"] else 0.0,
                         "distinct": r["distinct"], "only": r["only"]}
        for r in m["coverage"]["generators"]
    } if gen.num_generators > 1 else {}  # fmt: skip
    return {
        **m, "macs": gen.macs(), "parameters": sum(p.numel() for p in gen.parameters()),
        "steps": ckpt["metrics"].get("steps"), "per_generator": per_gen,
        "examples": [s for s in samples if s][:48],
    }  # fmt: skip


def throughput(paths: dict[str, Path], args) -> dict[str, float]:
    """Median graphs/s of each generator (forward + argmax, batch 1,000), interleaved."""
    gens = {n: load_generator(p)[0] for n, p in paths.items()}
    times: dict[str, list[float]] = {n: [] for n in gens}
    for g in gens.values():
        sample_graphs(g, 1000, seed=0)  # warm-up
    for rep in range(args.repeats):
        order = list(gens)
        order = order[rep % len(order) :] + order[: rep % len(order)]
        for n in order:
            t = time.perf_counter()
            for _ in range(args.timing_batches):
                sample_graphs(gens[n], 1000, seed=rep, batch_size=1000)
            times[n].append(1000 * args.timing_batches / (time.perf_counter() - t))
    return {n: statistics.median(v) for n, v in times.items()}


def spread(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        if "_s" not in r["row"] or "validity" not in r:
            continue
        method = r["row"].rsplit("_s", 1)[0]
        d = out.setdefault(method, {})
        for k in METRICS:
            if k in r:
                d.setdefault(k, []).append(r[k])
    for d in out.values():
        for k in list(d):
            v = [x for x in d[k] if x == x]  # NaN (e.g. no valid sample) left out
            d[k] = {
                "mean": statistics.mean(v) if v else float("nan"),
                "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                "values": d[k],
            }
    return out


def goals(rows: dict[str, dict], stats: dict[str, dict], args) -> dict[str, Any]:
    g: dict[str, Any] = {}
    single = stats.get("single")
    for method, s in stats.items():
        if method == "single" or method not in VARIANTS:
            continue
        ok = (s["validity"]["mean"] >= 0.95 and s["uniqueness"]["mean"] >= 0.5
              and s["novelty"]["mean"] >= 0.9)  # fmt: skip
        if single and "fcd" in s and "fcd" in single:
            ok = ok and s["fcd"]["mean"] < single["fcd"]["mean"]
        g[f"{method}_met_quality_goal"] = ok
    parent = rows.get(args.compress_parent)
    for method in ("content", "magnitude"):
        r = rows.get(f"{method}_{args.compress_parent}")
        if not (r and parent and "validity" in r):
            continue
        g[f"{method}_macs_fraction"] = r["macs"] / parent["macs"]
        g[f"{method}_drop_points"] = {
            k: 100 * (parent[k] - r[k]) for k in ("validity", "uniqueness", "novelty")
        }
    c = rows.get(f"content_{args.compress_parent}")
    m = rows.get(f"magnitude_{args.compress_parent}")
    if c and m and "validity" in c and "validity" in m:
        g["content_within_2_points"] = all(v <= 2 for v in g["content_drop_points"].values())
        g["content_beats_magnitude"] = sum(
            c[k] for k in ("validity", "uniqueness", "novelty")
        ) > sum(m[k] for k in ("validity", "uniqueness", "novelty"))
    return g


def table(rows: list[dict]) -> str:
    head = (f"{'row':<26} {'valid':>6} {'unique':>6} {'novel':>6} {'IntDiv':>6} {'FCD':>6} "
            f"{'distinct':>8} {'MACs':>8} {'graphs/s':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        if "validity" not in r:
            lines.append(f"{r['row']:<26} {r.get('error', 'failed')}")
            continue
        lines.append(
            f"{r['row']:<26} {r['validity']:>6.1%} {r['uniqueness']:>6.1%} {r['novelty']:>6.1%} "
            f"{r['internal_diversity']:>6.3f} {r.get('fcd', float('nan')):>6.2f} "
            f"{(r.get('coverage') or {}).get('union', ''):>8} {r['macs']:>8,} "
            f"{r.get('graphs_per_s', float('nan')):>9.0f}"
        )
    return "\n".join(lines)


def plot(stats: dict[str, dict], path: Path) -> None:
    plt = pyplot()
    methods = list(stats)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    width = 0.27
    for i, k in enumerate(("validity", "uniqueness", "novelty")):
        xs = [j + (i - 1) * width for j in range(len(methods))]
        ax.bar(xs, [100 * stats[m][k]["mean"] for m in methods], width,
               yerr=[100 * stats[m][k]["std"] for m in methods], label=k)  # fmt: skip
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
    ax.set_ylabel("% (mean over seeds, 1 s.d.)")
    ax.legend()
    save_figure(fig, path)


def grid(smiles: list[str], path: Path) -> None:
    """The first 24 valid samples, drawn by RDKit with their SMILES."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    mols = [Chem.MolFromSmiles(s) for s in smiles[:24]]
    img = Draw.MolsToGridImage(mols, molsPerRow=6, subImgSize=(180, 150), legends=smiles[:24])
    img.save(str(path))


def _methods(text: str) -> list[str]:
    names = [m for m in text.split(",") if m]
    bad = [m for m in names if m not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown method {', '.join(bad) or repr(text)}; choose from {', '.join(VARIANTS)}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--methods", type=_methods, default=list(DEFAULT_METHODS),
                   help=f"comma-separated rows of {', '.join(VARIANTS)} "
                        f"(default {','.join(DEFAULT_METHODS)})")  # fmt: skip
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=15_000, help="critic steps per row (the budget)")
    p.add_argument("--minutes", type=float, default=None,
                   help="also stop a row after this many minutes (default: steps only)")  # fmt: skip
    p.add_argument(
        "--hidden", type=lambda s: [int(x) for x in s.split(",")], default=[128, 256, 512]
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--minibatch-std", action="store_true", help="every critic sees the batch spread"
    )
    p.add_argument("--compress-parent", default="k4_both_s0")
    p.add_argument("--target-macs", type=float, default=0.25)
    p.add_argument("--finetune-steps", type=int, default=2000)
    p.add_argument("--no-compress", action="store_true")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--no-fcd", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timing-batches", type=int, default=5)
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "qm9_gan")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/qm9_gan.json")
    p.add_argument("--plot", type=Path, default=ROOT / "benchmarks/results/qm9_gan.png")
    p.add_argument("--grid", type=Path, default=ROOT / "benchmarks/results/qm9_gan_samples.png")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run of every path")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.minutes, args.hidden = [0, 1], 10, None, [16, 24, 32]
        args.samples, args.finetune_steps, args.repeats, args.timing_batches = 100, 5, 1, 1
        args.no_fcd = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    store = row_store(args, log=log)  # a failed row is saved too
    store.folder.mkdir(parents=True, exist_ok=True)
    graphs = load_graphs(args.data_dir)
    names = [f"{m}_s{s}" for m in args.methods for s in args.seeds]
    if not args.no_compress:
        names += [f"content_{args.compress_parent}", f"magnitude_{args.compress_parent}"]
    rows: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    for name, saved in store.resume(names):
        mpath = store.model_path(name)
        if saved is not None:
            rows[name] = saved
            if mpath.exists():
                paths[name] = mpath
            continue
        log(f"{name}: running")
        s0 = time.perf_counter()
        try:
            if name.startswith(("content_", "magnitude_")):
                method, parent = name.split("_", 1)
                ppath = store.model_path(parent)
                if not ppath.exists():
                    raise FileNotFoundError(f"the parent row {parent} has not been trained")
                rep = compress_gan(
                    ppath, mpath, target_macs=args.target_macs, method=method,
                    steps=args.finetune_steps, run_dir=Path(args.work_dir) / "runs" / name,
                    progress=False, log=log,
                )  # fmt: skip
            else:
                train_row(name, graphs, args)
                rep = {}
            rep.update(score(mpath, graphs, args))
            paths[name] = mpath
        except Exception as err:  # recorded; the run goes on
            rep = {"error": error_text(err)}
            log(f"{name}: failed: {rep['error']}")
        rep["row"], rep["seconds"] = name, time.perf_counter() - s0
        store.save(name, rep)
        rows[name] = rep
    timed = {n: p for n, p in paths.items() if n == args.compress_parent or
             n.startswith(("content_", "magnitude_"))}  # fmt: skip
    if timed:
        for n, v in throughput(timed, args).items():
            rows[n]["graphs_per_s"] = v
    ordered = [rows[n] for n in names if n in rows]
    stats = spread(ordered)
    result = {
        **header("qm9_gan", args),
        "data": graphs.spec,
        "load_average": loadavg(),
        "rows": ordered,
        "spread": stats,
        "goals": goals(rows, stats, args),
        "seconds": time.time() - t0,
    }
    write_results(args.out, result)
    if stats:
        plot(stats, args.plot)
    best = max((r for r in ordered if r.get("examples")), key=lambda r: r["uniqueness"] * r["validity"],
               default=None)  # fmt: skip
    if best is not None:
        grid(best["examples"], args.grid)
    print(table(ordered))
    print(json.dumps(result["goals"], indent=1))
    print(f"wrote {args.out}, {args.plot} and {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
