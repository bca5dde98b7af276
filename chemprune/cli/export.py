"""``chemprune export``: TorchScript file that runs without chemprune installed."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to TorchScript",
        description="Write a TorchScript archive of a checkpoint's model: "
        "torch.jit.load(path)(z, pos, batch) runs with torch alone.",
    )
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from chemprune.export import export_torchscript
    from chemprune.runfolder import check_output_path

    check_output_path(args.out, inputs=[("--model", args.model)])
    meta = export_torchscript(args.model, args.out)
    t = meta["target"]
    print(
        f"wrote {args.out}: {t['name']} in {t['unit']}, filters per block "
        f"{meta['config']['filter_channels']}; load with torch.jit.load"
    )
    return 0
