"""A reaction model robust to reagents in its input, trained much longer (issue 34).

Every step is a ``reaction-nmt`` command (printed as it runs), skipped when its output exists
under ``--work``, so the benchmark resumes where it stopped; training is carried across sessions
(``--train-minutes`` per call, ``--resume`` inside).

1. **Data** (``runs/uspto_robust/``):
   - ``data_50k``: the Liu split of USPTO-50k, forward, mixed sources; every train reaction
     written 4 times: clean, one random-SMILES copy (``--augment 1``) and two copies with a
     spectator set drawn from the reagent fields of USPTO-15k's *train* reactions by frequency
     (``--spectators``, ``--spectator-copies 2``: canonical, and random SMILES in random order);
   - ``data_15k``: USPTO-15k in mixed form (reactants and reagents together), train augmented
     once; its train reactions whose product is a product of the USPTO-50k valid/test splits or
     of USPTO-15k's valid/test splits are dropped (no test product is ever a training target);
   - ``data_train``: the two train corpora concatenated; validation = the first 1,000 USPTO-50k
     validation reactions (learning curves); test = the USPTO-50k test split;
   - the robustness test set, ``benchmarks/data/uspto50k_test_spectators/`` (committed; written
     once, checked against the test split's checksum afterwards): every USPTO-50k test source
     with a spectator set drawn from USPTO-15k's *test* reactions (``reaction-nmt
     add-spectators --seed 0``), never used in training.
2. **Train** ``compact`` for ``--train-minutes`` more (up to ``--total-steps``), warm-started the
   first time from the released model's dense parent (``benchmarks/parents/uspto50k_compact_5363.pt``,
   5,363 steps on clean USPTO-50k) with its vocabulary extended (``-update_vocab``), the noam
   schedule continuing at its step; a checkpoint every 500 steps, the last 20 kept.
3. **Evaluate** (``--evaluate``): the average of the last ``--average`` checkpoints and the
   current release (``models/uspto50k_compact.pt``) on the USPTO-50k test split clean, with
   spectators, and the USPTO-15k test split; beam 5, top-1/3/5 and invalid top-1; results in
   ``benchmarks/results/uspto_robust.{json,png}``.

Run (from the repository root)::

    .venv/bin/python benchmarks/uspto_robust.py --train-minutes 120 --threads 1
    .venv/bin/python benchmarks/uspto_robust.py --train-minutes 0 --evaluate
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import header, pyplot, save_figure, write_results  # noqa: E402
from reaction_jobs import REPO, Job, validation_view  # noqa: E402

from chemprune.common.atomic import atomic_write_text  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SPECTATOR_TEST = REPO / "benchmarks" / "data" / "uspto50k_test_spectators"
PARENT = REPO / "benchmarks" / "parents" / "uspto50k_compact_5363.pt"
#: the run's state carried between sessions (``--save-state``): the last checkpoint's weights in
#: half precision, its step, no Adam moments; one file, replaced each time
STATE = REPO / "benchmarks" / "parents" / "uspto_robust_last.pt"
RELEASE = REPO / "models" / "uspto50k_compact.pt"
#: the release's training steps, from its card: the parent's 5,363 + the 1,000 of compression
RELEASE_STEPS = 6363


def _lines(path: Path) -> list[str]:
    with open(path) as fh:
        return fh.read().splitlines()


def _step(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def prepare(args, work: Path) -> dict[str, Path]:
    from reaction_nmt.prepare import sha256
    from reaction_nmt.tokenize import detokenize

    u50k, u15k = args.uspto50k / "liu_split_smi", args.uspto15k
    data_50k, data_15k, data = work / "data_50k", work / "data_15k", work / "data_train"
    if not (data_50k / "manifest.json").is_file():
        files = [x for s in ("train", "valid", "test")
                 for x in (f"--{s}", str(u50k / f"retrosynthesis-{s}.smi.gz"))]  # fmt: skip
        Job("prepare", "--format", "liu-smi", *files, "--out", str(data_50k), "--augment", "1",
            "--spectators", str(u15k / "train.txt.gz"), "--spectator-copies", "2",
            threads=1, log=work / "prepare.log").wait()  # fmt: skip
    if not (data_15k / "manifest.json").is_file():
        files = [x for s in ("train", "valid", "test")
                 for x in (f"--{s}", str(u15k / f"{s}.txt.gz"))]  # fmt: skip
        Job("prepare", "--format", "mapped", *files, "--out", str(data_15k), "--augment", "1",
            threads=1, log=work / "prepare.log").wait()  # fmt: skip
    if not (data / "manifest.json").is_file():
        held_out = set()
        for folder in (data_50k, data_15k):
            for split in ("valid", "test"):
                held_out |= {detokenize(t) for t in _lines(folder / f"tgt-{split}.txt")}
        src = _lines(data_50k / "src-train.txt")
        tgt = _lines(data_50k / "tgt-train.txt")
        kept = dropped = 0
        for s, t in zip(_lines(data_15k / "src-train.txt"), _lines(data_15k / "tgt-train.txt"),
                        strict=True):  # fmt: skip
            if detokenize(t) in held_out:
                dropped += 1
                continue
            src.append(s)
            tgt.append(t)
            kept += 1
        data.mkdir(parents=True, exist_ok=True)
        atomic_write_text(data / "src-train.txt", "\n".join(src) + "\n")
        atomic_write_text(data / "tgt-train.txt", "\n".join(tgt) + "\n")
        for split in ("valid", "test"):
            for side in ("src", "tgt"):
                target = data / f"{side}-{split}.txt"
                if not target.exists():
                    target.symlink_to((data_50k / f"{side}-{split}.txt").resolve())
        manifest = {
            "format": "combined",
            "mode": "mixed",
            "direction": "forward",
            "parts": {
                "uspto50k": json.loads((data_50k / "manifest.json").read_text()),
                "uspto15k": json.loads((data_15k / "manifest.json").read_text()),
            },
            "uspto15k_train_lines_kept": kept,
            "uspto15k_train_lines_dropped_test_product": dropped,
            "splits": {"train": {"lines": len(src)}},
            "files": {"src-train.txt": {"sha256": sha256(data / "src-train.txt")}},
        }
        atomic_write_text(data / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    if not (SPECTATOR_TEST / "manifest.json").is_file():
        Job("add-spectators", "--data", str(data_50k), "--split", "test", "--spectators",
            str(u15k / "test.txt.gz"), "--seed", "0", "--out", str(SPECTATOR_TEST),
            threads=1, log=work / "prepare.log").wait()  # fmt: skip
    made = json.loads((SPECTATOR_TEST / "manifest.json").read_text())["derived_from"]
    if made["src_sha256"] != sha256(data_50k / "src-test.txt"):
        raise SystemExit(
            f"{SPECTATOR_TEST} was made from another USPTO-50k test split than "
            f"{data_50k / 'src-test.txt'} (checksums differ)"
        )
    return {"train": data, "view": validation_view(data, 1000), "15k": data_15k}


def seed(run: Path, source: Path) -> None:
    """The run's first checkpoint from a weights-only file: the released model's dense parent,
    or the state a previous session saved (``--save-state``). Fresh Adam moments, the noam
    schedule continued at the file's step."""
    from reaction_nmt.backend import load_checkpoint
    from reaction_nmt.compress.checkpoint import save_atomic

    ckpt = load_checkpoint(source)
    step = _state_step(ckpt) or _step(source)
    # "optimizer" is dropped by -reset_optim states (which -update_vocab needs): the step
    # count and the schedule's options stay, the Adam moments start afresh
    ckpt = dict(ckpt, optim={"training_step": step + 1, "decay_step": step + 1, "optimizer": None})
    ckpt["model"] = {k: v.float() for k, v in ckpt["model"].items()}
    ckpt["generator"] = {k: v.float() for k, v in ckpt["generator"].items()}
    run.mkdir(parents=True, exist_ok=True)
    save_atomic(ckpt, run / f"model_step_{step}.pt")


def _state_step(ckpt: dict) -> int | None:
    optim = ckpt.get("optim")
    return int(optim["training_step"]) - 1 if isinstance(optim, dict) and optim else None


def save_state(work: Path) -> Path:
    """The last checkpoint of the run, weights in half precision, no Adam moments: what the
    next session resumes from when ``runs/`` is gone (8.8 MB instead of 29 MB)."""
    from reaction_nmt.backend import checkpoints, load_checkpoint
    from reaction_nmt.compress.checkpoint import save_atomic

    last = checkpoints(work / "run_compact")[-1]
    ckpt = load_checkpoint(last)
    step = _step(last)
    state = {
        **{k: v for k, v in ckpt.items() if k not in ("optim", "integrity")},
        "model": {k: v.half() for k, v in ckpt["model"].items()},
        "generator": {k: v.half() for k, v in ckpt["generator"].items()},
        "optim": {"training_step": step + 1, "decay_step": step + 1},
    }
    save_atomic(state, STATE)
    print(f"state of step {step} -> {STATE} ({STATE.stat().st_size / 1e6:.1f} MB)")
    return STATE


def _has_moments(path: Path) -> bool:
    """Whether the checkpoint carries Adam moments (OpenNMT-py wrote it), not a weights-only
    seed (:func:`seed`), which needs ``-reset_optim states`` to start."""
    from reaction_nmt.backend import load_checkpoint

    return bool((load_checkpoint(path).get("optim") or {}).get("optimizer"))


def train(args, view: Path, work: Path) -> None:
    from reaction_nmt.backend import checkpoints

    run = work / "run_compact"
    found = checkpoints(run) if run.is_dir() else []
    if not found:
        seed(run, STATE if STATE.is_file() else PARENT)
        found = checkpoints(run)
    if args.train_minutes <= 0 or _step(found[-1]) >= args.total_steps:
        return
    extra = ["-train_steps", str(args.total_steps), "-save_checkpoint_steps", "500",
             "-keep_checkpoint", "20", "-valid_steps", "1000", "-report_every", "100"]  # fmt: skip
    if _step(found[-1]) == _step(PARENT):  # the first call: the parent's vocabulary extended
        extra += ["-update_vocab", "true"]
    if not _has_moments(found[-1]):
        extra += ["-reset_optim", "states"]  # seeded from a weights-only file
    Job("train", "--data", str(view), "--out", str(run), "--preset", "compact", "--resume",
        "--max-minutes", str(args.train_minutes), "--threads", str(args.threads), *extra,
        threads=args.threads, log=work / "train.log").wait()  # fmt: skip


def evaluate(args, data: dict[str, Path], work: Path) -> dict:
    from reaction_nmt.backend import checkpoints

    run = work / "run_compact"
    found = [c for c in checkpoints(run) if _step(c) > _step(PARENT)]
    if not found:
        raise SystemExit(f"{run} has no checkpoint trained past the parent yet")
    last = found[-args.average :]
    averaged = work / f"avg_{_step(last[0])}_{_step(last[-1])}.pt"
    if not averaged.is_file():
        Job("average", "--models", *map(str, last), "--out", str(averaged),
            threads=1, log=work / "eval.log").wait()  # fmt: skip
    models = {"release": RELEASE, "robust": averaged}
    tests = {
        "uspto50k": data["train"],
        "uspto50k_spectators": SPECTATOR_TEST,
        "uspto15k": data["15k"],
    }
    results: dict = {}
    jobs = []
    for m, model in models.items():
        for t, folder in tests.items():
            tag = f"{m}_{t}" if m == "release" else f"{averaged.stem}_{t}"
            out = work / f"eval_{tag}.json"
            results[(m, t)] = out
            if not out.is_file():
                jobs.append(Job("evaluate", "--model", str(model), "--data", str(folder),
                                "--split", "test", "--beam-size", "5", "--n-best", "5",
                                "--max-length", "200", "--threads", "1", "--json", str(out),
                                "--out-dir", str(work / f"pred_{tag}"),
                                threads=1, log=work / "eval.log"))  # fmt: skip
                if len(jobs) == args.parallel:
                    for job in jobs:
                        job.wait()
                    jobs = []
    for job in jobs:
        job.wait()
    rows = []
    for (m, t), path in results.items():
        r = json.loads(path.read_text())
        rows.append({"model": m, "test": t, "path": str(models[m]),
                     "steps": _step(last[-1]) if m == "robust" else RELEASE_STEPS,
                     "n": r["n"], "invalid_top1": r["invalid_top1"],
                     **{f"top{k}": r["top_k"].get(str(k)) for k in (1, 2, 3, 5)}})  # fmt: skip
    return {"rows": rows, "averaged": [str(p) for p in last]}


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    tests = ["uspto50k", "uspto50k_spectators", "uspto15k"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.38
    for i, model in enumerate(("release", "robust")):
        vals = [next((r["top1"] for r in rows if r["model"] == model and r["test"] == t), 0)
                for t in tests]  # fmt: skip
        xs = [j + (i - 0.5) * width for j in range(len(tests))]
        ax.bar(xs, [100 * v for v in vals], width, label=model)
    ax.set_xticks(range(len(tests)), ["USPTO-50k test", "with spectators", "USPTO-15k test"])
    ax.set_ylabel("top-1 (%)")
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "uspto_robust")
    p.add_argument("--uspto50k", type=Path, default=REPO.parent / "shared/datasets/uspto_50k")
    p.add_argument("--uspto15k", type=Path, default=REPO.parent / "shared/datasets/uspto_15k")
    p.add_argument("--train-minutes", type=float, default=120.0)
    p.add_argument("--total-steps", type=int, default=200000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--evaluate", action="store_true")
    p.add_argument("--average", type=int, default=5, help="last checkpoints averaged")
    p.add_argument("--parallel", type=int, default=2, help="evaluations side by side")
    p.add_argument("--name", default="uspto_robust")
    p.add_argument("--save-state", action="store_true", help=f"write {STATE.name} at the end")
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data = prepare(args, args.work)
    train(args, data["view"], args.work)
    if args.save_state:
        save_state(args.work)
    if not args.evaluate:
        return 0
    result = evaluate(args, data, args.work)
    record = {**header(args.name, args), **result}
    write_results(RESULTS / f"{args.name}.json", record)
    plot(result["rows"], RESULTS / f"{args.name}.png")
    for r in result["rows"]:
        print(f"{r['model']:<8} {r['test']:<20} top-1 {100 * r['top1']:5.1f}%  "
              f"top-5 {100 * r['top5']:5.1f}%  invalid {100 * (r['invalid_top1'] or 0):5.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
