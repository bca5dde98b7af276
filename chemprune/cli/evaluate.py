"""``chemprune evaluate``: MAE and RMSE of a saved model on its validation or test molecules."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from chemprune.common.options import positive_int, threads_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="MAE/RMSE of a model on its QM9 split",
        description="Evaluate a checkpoint on the validation or test molecules "
        "recorded in it, in the target's unit.",
    )
    p.add_argument("--model", required=True, type=Path, help="checkpoint (.pt)")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument(
        "--limit", type=positive_int, default=None, help="only the first N molecules of the split"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder of the qm9-format CSVs the model was trained on",
    )
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--runtime",
        choices=("eager", "torchscript", "export", "compiled"),  # chemprune.deploy.runtime.RUNTIMES
        default="eager",
        help="eager PyTorch (default), a frozen TorchScript graph, or the torch.export program "
        "(same values; export's radius graph is O(N^2) in a batch's atoms: use a small "
        "--batch-size), or torch.compile (fastest on many molecules; ~10 s to compile)",
    )
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import CliError
    from chemprune.common.options import printable
    from chemprune.deploy.runtime import with_runtime
    from chemprune.pipeline.evaluate import evaluate_model
    from chemprune.pipeline.trained import load_trained

    def needs_split(model, ckpt, parts) -> None:
        if parts is None:
            raise CliError(
                f"model file {args.model} records no {args.split} molecules to evaluate on"
            )

    set_threads(args.threads)
    trained = load_trained(args.model, args.data_dir, before_data=needs_split)
    model, target, mset = trained.model, trained.target, trained.mset
    indices = trained.parts[args.split]
    if args.limit is not None:
        indices = indices[: args.limit]
    metrics = evaluate_model(
        with_runtime(model, args.runtime), mset, indices, batch_size=args.batch_size
    )
    if not all(math.isfinite(float(metrics[k])) for k in ("mae", "rmse")):
        raise CliError(
            f"model file {args.model} gave non-finite predictions on the {args.split} split "
            f"(MAE {metrics['mae']}); its weights may be damaged"
        )
    result = {
        "model": str(args.model),
        "target": target["name"],
        "unit": target["unit"],
        "split": args.split,
        "runtime": args.runtime,
        **metrics,
    }
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        unit = printable(target["unit"])
        print(
            f"{printable(target['name'])} on {metrics['n']} {args.split} molecules: "
            f"MAE {metrics['mae']:.4f} {unit}, RMSE {metrics['rmse']:.4f} {unit}"
        )
    return 0
