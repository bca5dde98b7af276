"""``chemprune export``: a file that runs without chemprune installed (torch.export or
TorchScript)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to a torch.export program (or TorchScript)",
        description="Write a checkpoint's model as a file that runs with torch alone, checked "
        "against the eager model first: a torch.export program (default; "
        "torch.export.load(path).module()(z, pos, batch), any number of atoms, forces by "
        "autograd) or, with --format torchscript, a frozen TorchScript archive "
        "(torch.jit.load(path)(z, pos, batch); TorchScript is deprecated in torch 2.13).",
    )
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="file to write (.pt2 for export)")
    p.add_argument("--format", choices=("export", "torchscript"), default="export")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from chemprune.cli.errors import CliError
    from chemprune.common.runfolder import check_output_path
    from chemprune.deploy.export import export_model

    check_output_path(args.out, inputs=[("--model", args.model)])
    if args.format == "export" and args.out.suffix != ".pt2":
        raise CliError(
            f"--out {args.out}: a torch.export program is a .pt2 file (or --format torchscript)"
        )
    meta = export_model(args.model, args.out, fmt=args.format)
    from chemprune.common.options import printable

    t = {k: printable(meta["target"].get(k, "")) for k in ("name", "unit")}
    how = "torch.export.load(path).module()" if args.format == "export" else "torch.jit.load"
    print(
        f"wrote {args.out}: {t['name']} in {t['unit']}, filters per block "
        f"{meta['config']['filter_channels']}; checked against the eager model; load with {how}"
    )
    return 0
