"""Translation speed of reaction models, measured side by side: reactions/s with beam search.

Each model is loaded once (``reaction_nmt.backend.Translator``, compressed files included) and
translates the same first ``--n`` sources of a prepared split; the models take turns
(``--repeats`` rounds, the order rotated each round), so that a change in machine load hits
all of them alike, and the median round is reported. End-to-end speed also depends on how long
the predictions are (a model that emits long invalid strings decodes longer), so the mean
length of the best hypothesis is reported beside it. The first model is the reference of the
speedup column. Prints a table, writes ``benchmarks/results/<--name>.json`` and ``.png``.

Run (from the repository root)::

    .venv/bin/python benchmarks/uspto_speed.py \\
        --models compact=runs/uspto_forward/run_compact/model_step_1889.pt \\
                 mt=runs/uspto_forward/run_mt/model_step_512.pt \\
        --data runs/uspto_forward/data_uspto50k --n 200 --threads 1
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from harness import loadavg, pyplot, save_figure, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_models(items: list[str]) -> dict[str, Path]:
    models = {}
    for item in items:
        label, sep, path = item.partition("=")
        label, path = (label, Path(path)) if sep else (Path(item).stem, Path(item))
        if not path.is_file():
            raise SystemExit(f"model {path} does not exist")
        models[label] = path
    return models


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="LABEL=PATH (or PATH)")
    p.add_argument("--data", type=Path, required=True, help="prepared folder")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=200, help="sources translated per round")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="uspto_speed", help="results file stem")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)

    import torch

    from reaction_nmt.backend import Translator, count_parameters

    torch.set_num_threads(args.threads)
    models = parse_models(args.models)
    src = args.data / f"src-{args.split}.txt"
    if not src.is_file():
        raise SystemExit(f"{src} does not exist (a folder written by 'reaction-nmt prepare')")
    sources = [line.strip() for line in open(src) if line.strip()][: args.n]
    translators = {
        label: Translator(
            path,
            beam_size=args.beam,
            n_best=1,
            batch_size=args.batch_size,
            max_length=args.max_length,
        )  # fmt: skip
        for label, path in models.items()
    }
    for t in translators.values():
        t.translate(sources[:8])  # warm-up
    seconds: dict[str, list[float]] = {label: [] for label in models}
    lengths: dict[str, float] = {}
    load = [loadavg()]
    order = list(models)
    for r in range(args.repeats):
        for label in order[r % len(order) :] + order[: r % len(order)]:
            t0 = time.perf_counter()
            out = translators[label].translate(sources)
            seconds[label].append(time.perf_counter() - t0)
            lengths[label] = statistics.mean(len(nb[0][0].split()) for nb in out)
        load.append(loadavg())
    rows = []
    for label, path in models.items():
        med = statistics.median(seconds[label])
        rows.append({
            "model": label, "path": str(path), "parameters": count_parameters(path),
            "file_bytes": path.stat().st_size, "seconds": seconds[label],
            "reactions_per_s": len(sources) / med, "mean_output_tokens": lengths[label],
        })  # fmt: skip
    ref = rows[0]["reactions_per_s"]
    print(f"{len(sources)} {args.split} reactions, beam {args.beam}, {args.threads} thread(s), "
          f"median of {args.repeats} rounds")  # fmt: skip
    print(f"{'model':<14} {'params':>11} {'file MB':>8} {'rxn/s':>7} {'speedup':>8} {'out tok':>8}")
    for r in rows:
        r["speedup"] = r["reactions_per_s"] / ref
        print(f"{r['model']:<14} {r['parameters']:>11,} {r['file_bytes'] / 1e6:>8.2f} "
              f"{r['reactions_per_s']:>7.1f} {r['speedup']:>7.2f}x {r['mean_output_tokens']:>8.1f}")  # fmt: skip
    summary = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_per_round": load, "sources": len(sources), "beam": args.beam,
        "threads": args.threads, "rows": rows,
    }  # fmt: skip
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{args.name}.json"
    write_results(out, summary, indent=2)
    plot(rows, args.results / f"{args.name}.png", f"{len(sources)} reactions, beam {args.beam}")
    print(f"wrote {out} and .png")
    return 0


def plot(rows: list[dict], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r["model"] for r in rows], [r["reactions_per_s"] for r in rows], color="tab:blue")
    ax.set(ylabel="reactions / s", title=title)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
