"""Would a shorter cutoff make a converged SchNet cheaper? Pairs kept and accuracy lost, no
training.

A tabulated block costs per pair; the only other lever than the filter channels is the number
of pairs. This tabulates a model with its filters tapered to zero over the last Angstrom before
a shorter cutoff ``c`` (a cosine step, so energies stay smooth), counts the pairs within ``c``
against those within the model's cutoff, and measures the validation MAE with no fine-tuning.
Writes JSON.

    .venv/bin/python benchmarks/cutoff_probe.py --model runs/u0/spk_u0.pt --cutoffs 5,6,7,8
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from harness import write_results  # noqa: E402

from chemprune.molecules.checkpoint import load_model  # noqa: E402
from chemprune.molecules.data.batching import MoleculeSet  # noqa: E402
from chemprune.molecules.data.qm9 import load_qm9  # noqa: E402
from chemprune.molecules.models.graph import radius_pairs  # noqa: E402
from chemprune.molecules.models.tabulated import filter_function  # noqa: E402
from chemprune.pipeline.compress_schnet import split_from_checkpoint  # noqa: E402
from chemprune.pipeline.evaluate import evaluate_model  # noqa: E402


def taper(fn, c: float):
    def tapered(d):
        x = ((d - (c - 1.0)).clamp(0.0, 1.0) * math.pi).cos()
        return fn(d) * (0.5 * (1.0 + x)).unsqueeze(-1)

    return tapered


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument(
        "--cutoffs", type=lambda s: [float(x) for x in s.split(",")], default=[5, 6, 7, 8]
    )
    p.add_argument("--knots", type=int, default=256)
    p.add_argument("--molecules", type=int, default=2000, help="validation molecules scored")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cutoff_probe.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_qm9()
    model, ckpt = load_model(args.model)
    model.eval()
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values(ckpt["target"]["name"]))
    val = split_from_checkpoint(ckpt, len(mset)).val[: args.molecules]
    b = mset.collate(val)
    all_pairs = radius_pairs(b.pos, b.batch, model.cutoff).size(1)
    rows = [{"cutoff": model.cutoff, "pairs": 1.0,
             "val_mae": evaluate_model(model.tabulated(args.knots), mset, val)["mae"]}]  # fmt: skip
    exact = copy.deepcopy(model).double()  # the filters tapered and tabulated in float64
    for c in args.cutoffs:
        tab = model.tabulated(args.knots).eval()
        for blk, src in zip(tab.interactions, exact.interactions, strict=True):
            blk.filter_network.fill(taper(filter_function(src, exact.rbf, exact.cutoff), c))
        tab.cutoff = c
        pairs = radius_pairs(b.pos, b.batch, c).size(1) / all_pairs
        rows.append({"cutoff": c, "pairs": pairs, "val_mae": evaluate_model(tab, mset, val)["mae"]})
    print(f"{'cutoff A':>8} {'pairs kept':>10} {'val MAE':>9}   ({len(val)} validation molecules)")
    for r in rows:
        print(f"{r['cutoff']:8.1f} {r['pairs']:10.0%} {r['val_mae']:9.4f}")
    write_results(args.out, {"model": str(args.model), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
