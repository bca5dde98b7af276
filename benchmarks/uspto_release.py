"""The released reaction model: train on USPTO-50k, compress, evaluate, write its card.

Every step is a ``reaction-nmt`` command (printed as it runs) and is skipped when its output
already exists under ``--work``, so an interrupted release resumes where it stopped:

1. ``prepare`` the Liu split of USPTO-50k (forward direction, mixed sources), and a copy of the
   data folder whose validation files hold the first 1,000 reactions (learning curves only);
2. ``train`` the ``compact`` preset for ``--minutes`` (or exactly ``--train-steps``) on
   ``--threads`` threads: the parent;
3. side by side, one thread each: ``compress`` the parent (OLMP ``type`` grouping, one round of
   ``--retrain-steps`` steps with gradual magnitude pruning to ``--gradual``, search capped at
   the same sparsity, constraint: exact-sequence accuracy on 500 validation reactions drops at
   most 1 point, sparse-int8 storage), and the control: the parent trained on for the same
   ``--retrain-steps`` steps (dense), since the round is also more training;
4. ``evaluate`` parent, control and released model on the full USPTO-50k test split (beam 5,
   top-1..5 by canonical match);
5. translation speed of parent and released model in turns (``benchmarks/uspto_speed.py``;
   kept when its JSON measured the same released file, path and size);
6. ``benchmarks/results/<--name>.{json,png}`` and the card ``<--out>`` with ``.md``.

Run (from the repository root; ~2.5 h on the 2-core CPU)::

    .venv/bin/python benchmarks/uspto_release.py --minutes 100 --threads 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import header, pyplot, save_figure, write_results  # noqa: E402
from reaction_jobs import REPO, Job, head_lines, validation_view  # noqa: E402

from chemprune.common.atomic import atomic_write_text  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def _step(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def prepare(args, work: Path) -> tuple[Path, Path]:
    liu = args.uspto50k / "liu_split_smi"
    data = work / "data_uspto50k"
    if not (data / "manifest.json").is_file():
        paths = {s: liu / f"retrosynthesis-{s}.smi.gz" for s in ("train", "valid", "test")}
        if args.quick:
            paths = {s: head_lines(p, work / f"{s}.smi", 300 if s == "train" else 30)
                     for s, p in paths.items()}  # fmt: skip
        files = [x for s, p in paths.items() for x in (f"--{s}", str(p))]
        Job("prepare", "--format", "liu-smi", *files, "--out", str(data),
            threads=1, log=work / "prepare.log").wait()  # fmt: skip
    return data, validation_view(data, 1000)


def seed_parent(parent: Path, run: Path) -> None:
    """Start ``run`` from a released weights-only parent (``--parent``) instead of training it.

    The file has no Adam state (``optim`` is None), and ``compress`` and the control both continue
    training, so its checkpoint in ``run`` gets the optimizer's step count only: OpenNMT-py then
    continues the noam schedule at the parent's step with fresh Adam moments (for both of them).
    """
    from reaction_nmt.backend import load_checkpoint
    from reaction_nmt.compress.checkpoint import save_atomic

    ckpt = load_checkpoint(parent)
    step = _step(parent)
    if not ckpt.get("optim"):
        ckpt = dict(ckpt, optim={"training_step": step + 1, "decay_step": step + 1})
    run.mkdir(parents=True, exist_ok=True)
    save_atomic(ckpt, run / f"model_step_{step}.pt")


def train_parent(args, view: Path, work: Path) -> Path:
    from reaction_nmt.backend import checkpoints

    run = work / "run_compact"
    if args.parent is not None and not (run.is_dir() and checkpoints(run)):
        seed_parent(args.parent, run)
    if not (run.is_dir() and checkpoints(run)):
        extra = ["-warmup_steps", "1000", "-valid_steps", "500", "-save_checkpoint_steps", "500"]
        if args.quick:
            extra = ["-warmup_steps", "10", "-valid_steps", "5", "-save_checkpoint_steps", "5",
                     "-batch_size", "1024", "-report_every", "5"]  # fmt: skip
        if args.train_steps:
            extra += ["-train_steps", str(args.train_steps)]
        Job("train", "--data", str(view), "--out", str(run), "--preset", "compact",
            "--max-minutes", str(args.minutes), "--threads", str(args.threads), *extra,
            threads=args.threads, log=work / "train.log").wait()  # fmt: skip
    found = checkpoints(run)
    if args.train_steps:
        found = [c for c in found if _step(c) <= args.train_steps]
    return found[-1]


def compress_and_control(args, parent: Path, data: Path, view: Path, work: Path) -> Path:
    from reaction_nmt.backend import checkpoints

    steps = _step(parent) + args.retrain_steps
    every = 5 if args.quick else 500
    jobs = []
    control = work / "run_dense_more"
    if not any(_step(c) >= steps for c in (checkpoints(control) if control.is_dir() else [])):
        if control.exists():
            shutil.rmtree(control)
        shutil.copytree(parent.parent, control, ignore=shutil.ignore_patterns("model_step_*"))
        shutil.copy(parent, control / parent.name)
        jobs.append(Job("train", "--data", str(view), "--out", str(control), "--preset",
                        "compact", "--resume", "--threads", "1", "-train_steps", str(steps),
                        "-valid_steps", str(every), "-save_checkpoint_steps", str(every),
                        threads=1, log=work / "control.log"))  # fmt: skip
    out = args.out
    if not out.is_file():
        jobs.append(Job(
            "compress", "--model", str(parent), "--data", str(data), "--strategy", "type",
            "--metric", "seq", "--max-top1-drop", "1.0",
            "--valid-limit", "20" if args.quick else "500",
            "--budget", "2" if args.quick else "15", "--warm-start", "2" if args.quick else "8",
            "--rounds", "1",
            "--retrain-steps", str(args.retrain_steps), "--retrain-minutes", "600",
            "--gradual", str(args.gradual), "--target-sparsity", str(args.gradual),
            "--threads", "1", "--storage", "sparse-int8", "--out", str(out),
            "--json", str(work / "compress.json"), threads=1, log=work / "compress.log",
        ))  # fmt: skip
    for job in jobs:
        job.wait()
    return max((c for c in checkpoints(control) if _step(c) <= steps), key=_step)


def evaluate(models: dict[str, Path], data: Path, work: Path) -> dict[str, dict]:
    """Full test split, beam 5, two models at a time (one thread each)."""
    results: dict[str, dict] = {}
    pending = [(k, p) for k, p in models.items() if not (work / f"eval_{k}.json").is_file()]
    while pending:
        batch, pending = pending[:2], pending[2:]
        jobs = [Job("evaluate", "--model", str(p), "--data", str(data), "--split", "test",
                    "--beam-size", "5", "--n-best", "5", "--max-length", "200",
                    "--threads", "1", "--json", str(work / f"eval_{k}.json"),
                    "--out-dir", str(work / f"pred_{k}"), threads=1, log=work / "eval.log")
                for k, p in batch]  # fmt: skip
        for job in jobs:
            job.wait()
    for k in models:
        results[k] = json.loads((work / f"eval_{k}.json").read_text())
    return results


def speed(parent: Path, released: Path, data: Path, name: str, results: Path) -> dict:
    import subprocess

    out = results / f"{name}_speed.json"
    if out.is_file():  # measured for this very file already (same path and size)?
        done = json.loads(out.read_text())
        row = next((r for r in done["rows"] if r["model"] == "released"), {})
        if row.get("path") == str(released) and row.get("file_bytes") == released.stat().st_size:
            return done
    cmd = [sys.executable, str(REPO / "benchmarks" / "uspto_speed.py"), "--models",
           f"parent={parent}", f"released={released}", "--data", str(data), "--n", "200",
           "--threads", "1", "--repeats", "3", "--name", f"{name}_speed",
           "--results", str(results)]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--uspto50k", type=Path, default=REPO.parent / "shared/datasets/uspto_50k")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "release_rxn")
    p.add_argument("--minutes", type=float, default=100.0, help="parent's training budget")
    p.add_argument("--train-steps", type=int, default=None, help="or exactly this many steps")
    p.add_argument("--threads", type=int, default=2, help="threads of the parent's training")
    p.add_argument(
        "--parent",
        type=Path,
        default=None,
        help="start from this trained parent (model_step_N.pt naming, e.g. "
        "benchmarks/parents/uspto50k_compact_5363.pt) instead of training one",
    )
    p.add_argument("--retrain-steps", type=int, default=1000)
    p.add_argument("--gradual", type=float, default=0.8, help="sparsity of the released model")
    p.add_argument("--out", type=Path, default=REPO / "models" / "uspto50k_compact.pt")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--name", default="uspto_release")
    p.add_argument(
        "--quick",
        action="store_true",
        help="300 training reactions, 10 steps: checks the pipeline, not a model",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.train_steps, args.retrain_steps = args.train_steps or 10, 10
        args.name = f"{args.name}_quick"
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    data, view = prepare(args, args.work)
    parent = train_parent(args, view, args.work)
    control = compress_and_control(args, parent, data, view, args.work)
    models = {"parent": parent, "control": control, "released": args.out}
    scores = evaluate(models, data, args.work)
    timing = speed(parent, args.out, data, args.name, args.results)

    from reaction_nmt.backend import count_parameters

    compress = json.loads((args.work / "compress.json").read_text())
    rows = []
    for k, path in models.items():
        ev = scores[k]
        steps = _step(path) if k != "released" else _step(parent) + args.retrain_steps
        rows.append({
            "model": k, "path": str(path), "steps": steps, "file_bytes": path.stat().st_size,
            "parameters": count_parameters(path), "test_reactions": ev["n"],
            "top_k": ev["top_k"], "invalid_top1": ev["invalid_top1"],
        })  # fmt: skip
    result = {
        **header("uspto_release", args),
        "rows": rows,
        "evaluate": scores,
        "compress": {k: compress[k] for k in compress if k not in ("history",)},
        "speed": timing,
        "seconds": time.time() - t0,
    }
    out = args.results / f"{args.name}.json"
    write_results(out, result)
    plot(rows, out.with_suffix(".png"))
    card = args.out.with_suffix(".md")
    atomic_write_text(card, model_card(result, args))
    print(table(rows, timing))
    print(f"wrote {out}, {out.with_suffix('.png')} and {card}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    keys = list(rows[0]["top_k"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[3, 1])
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [100 * r["top_k"][k] for k in keys], width, label=f"{r['model']} "
               f"({r['steps']} steps)")  # fmt: skip
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"top-{k}" for k in keys])
    ax.set_ylabel(f"USPTO-50k test accuracy, % ({rows[0]['test_reactions']:,} reactions)")
    ax.legend(fontsize=8)
    bx.bar([r["model"] for r in rows], [r["file_bytes"] / 1e6 for r in rows], color="gray")
    bx.set_ylabel("file MB")
    save_figure(fig, path)


def model_card(result: dict, args) -> str:
    rows = {r["model"]: r for r in result["rows"]}
    shown = args.out.resolve()
    shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
    par, ctl, rel = rows["parent"], rows["control"], rows["released"]
    olmp = result["compress"].get("olmp") or {}
    metric = result["compress"]["metric"]
    speed = {s["model"]: s for s in result["speed"]["rows"]}
    manifest = json.loads((args.work / "data_uspto50k" / "manifest.json").read_text())
    splits = manifest["splits"]

    restart = (
        f" Both continued from `{args.parent.name}`, a weights-only file: the noam schedule"
        " went on at the parent's step with fresh Adam moments, for both alike."
        if args.parent is not None
        else ""
    )

    def accs(r):
        return " | ".join(f"{100 * r['top_k'][k]:.1f}%" for k in ("1", "2", "3", "5"))

    sets = ", ".join(f"{k} {100 * v['sparsity']:.0f}%" for k, v in olmp.get("sets", {}).items())
    return f"""# `{args.out.name}`: USPTO-50k forward reaction prediction, compact transformer, pruned

Reactant (and reagent) SMILES in, product SMILES out:

```
.venv/bin/reaction-nmt predict --model {shown} "CC(C)(C)OC(=O)OC(=O)OC(C)(C)C.NCCc1ccc(N)cc1F" --n-best 3
```

(the first reaction of the test split: a Boc protection; `make demo` shows the first three
beside their recorded products).

test_top1: {rel["top_k"]["1"]:.4f}
test_top5: {rel["top_k"]["5"]:.4f}
test_reactions: {rel["test_reactions"]}
weights_removed: {olmp.get("sparsity", 0):.4f}

(exact canonical match of the product, RDKit, beam 5, on the USPTO-50k test split.)

Written by `{result["command"]}` ({result["timestamp"]}); every number below is in
`benchmarks/results/{args.name}.json`, and the test accuracies are reproduced by

```
.venv/bin/reaction-nmt evaluate --model {shown} --data DATA --split test \\
    --beam-size 5 --n-best 5 --max-length 200
```

with `DATA` the folder step 1 of `benchmarks/uspto_release.py` writes
(`reaction-nmt prepare --format liu-smi` on `../shared/datasets/uspto_50k/liu_split_smi`).

## Data
USPTO-50k (Schneider et al. 2016), the Liu et al. (2017) split, read in the forward direction
(reactants -> product), sources "mixed" (reactants and reagents together, RDKit-canonical,
Molecular Transformer tokens): {splits["train"]["written"]:,} training, {splits["valid"]["written"]:,}
validation and {splits["test"]["written"]:,} test reactions (rejected by `prepare`, by reason: training {splits["train"]["rejected_by_reason"]},
validation {splits["valid"]["rejected_by_reason"]}, test {splits["test"]["rejected_by_reason"]}).
No augmentation. The learning curves used the first 1,000 validation reactions.

## Model and training
OpenNMT-py 3.5.1 transformer, preset `compact` (4 encoder / 2 decoder layers, d = 192, 8 heads,
feed-forward 512, shared embeddings; {par["parameters"]:,} parameters), Adam with the noam schedule
(1,000 warm-up steps), batches of 4,096 tokens, {par["steps"]:,} steps on {args.threads} CPU threads.

## Compression
`reaction-nmt compress` from the parent: OLMP with one threshold set per weight type (`type`),
one round of {args.retrain_steps:,} retraining steps in which the masks tighten gradually (cubic
ramp) to {100 * args.gradual:.0f}% of the weights, then a search capped at the same sparsity; the
constraint: exact-sequence accuracy on 500 validation reactions at most 1 point below the
parent's ({metric["before"]:.1f} -> {metric["after"]:.1f}, met: {metric["constraint_met"]}).
Weights removed: {100 * olmp.get("sparsity", 0):.1f}% ({sets}). Stored as the positions of the
kept weights and their values in int8 (one scale per tensor).

## Results: full USPTO-50k test split ({rel["test_reactions"]:,} reactions, beam 5, canonical match)

| model | steps | top-1 | top-2 | top-3 | top-5 | invalid top-1 | file |
|---|---:|---:|---:|---:|---:|---:|---:|
| parent (dense) | {par["steps"]:,} | {accs(par)} | {100 * par["invalid_top1"]:.1f}% | {par["file_bytes"] / 1e6:.2f} MB |
| control: parent + {args.retrain_steps:,} dense steps | {ctl["steps"]:,} | {accs(ctl)} | {100 * ctl["invalid_top1"]:.1f}% | {ctl["file_bytes"] / 1e6:.2f} MB |
| **this file** | {rel["steps"]:,} | {accs(rel)} | {100 * rel["invalid_top1"]:.1f}% | {rel["file_bytes"] / 1e6:.2f} MB |

The control is the fair reference: the compression round is also {args.retrain_steps:,} more
steps of training for a parent that is still improving.{restart} At equal training this file is
{100 * (ctl["top_k"]["1"] - rel["top_k"]["1"]):.1f} points of top-1 below the control (and
{100 * (rel["top_k"]["1"] - par["top_k"]["1"]):+.1f} against the parent): the search's constraint
compares with the parent, which the extra round flatters, so the difference to the control is
what removing {100 * olmp.get("sparsity", 0):.0f}% of the weights costs. (The weights alone are
{result["compress"]["dense_bytes"] / 1e6:.2f} MB dense; the parent and control files hold more.)

Speed, {result["speed"]["sources"]} test reactions, beam 5, one thread, in turns
(`benchmarks/uspto_speed.py`): parent {speed["parent"]["reactions_per_s"]:.1f} reactions/s, this
file {speed["released"]["reactions_per_s"]:.1f} ({speed["released"]["speedup"]:.2f}x; mean
prediction {speed["parent"]["mean_output_tokens"]:.1f} and {speed["released"]["mean_output_tokens"]:.1f}
tokens). Unstructured sparsity makes the file small, not the matrix products faster (the weights
are dense again in memory), so a difference in speed comes from how long the predictions are.

## Limits
A few CPU hours of training: far from the Molecular Transformer's 88.6% top-1 on USPTO-MIT mixed
(500,000 GPU steps on about 12x more reactions). One seed. Forward direction only, single-product reactions; sources
must be given the way the training data were written (reactants and reagents mixed, '.'-joined).
Out-of-domain chemistry (anything unlike US patent reactions) gets confident nonsense: check the
predictions' scores and validity.
"""


def table(rows: list[dict], timing: dict) -> str:
    keys = list(rows[0]["top_k"])
    head = (f"{'model':<9} {'steps':>6} {'file MB':>8} "
            + " ".join(f"{'top-' + k:>7}" for k in keys) + f" {'invalid':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = " ".join(f"{100 * r['top_k'][k]:>6.1f}%" for k in keys)
        lines.append(f"{r['model']:<9} {r['steps']:>6} {r['file_bytes'] / 1e6:>8.2f} {cells} "
                     f"{100 * r['invalid_top1']:>7.1f}%")  # fmt: skip
    for s in timing["rows"]:
        lines.append(f"speed {s['model']}: {s['reactions_per_s']:.1f} reactions/s "
                     f"({s['speedup']:.2f}x), {s['mean_output_tokens']:.1f} tokens out")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
