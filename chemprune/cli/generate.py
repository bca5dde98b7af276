"""``chemprune generate``: train, sample and compress GAN generators of QM9 molecular graphs."""

from __future__ import annotations

import argparse
from pathlib import Path

from chemprune.common.options import (
    fraction,
    json_line,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    ramp_fraction,
    seed_int,
    threads_int,
)

DESCRIPTION = """Generate molecules like QM9's (at most 9 heavy atoms of C, N, O, F) with
MolGAN-style graph GANs trained by WGAN-GP: `train` K generators sharing a trunk (--engine
wgan_gp; mgan adds a critic head that must tell the generators apart; mgo_gan an orthogonality
term between their samples' embeddings), `sample` molecules with their validity, uniqueness,
novelty, internal diversity and Frechet ChemNet Distance, `compress` a trained generator by
content-aware channel pruning (removed for real) and distillation from the original."""


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(t) for t in text.split(","))
    except ValueError:
        w = ()
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError(f"comma-separated positive widths, got {text!r}")
    return w


def add_parser(sub: argparse._SubParsersAction) -> None:
    from chemprune.engines.gan import GAN_ENGINES

    p = sub.add_parser("generate", help="molecule-generating GANs (train, sample, compress)",
                       description=DESCRIPTION)  # fmt: skip
    act = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = act.add_parser("train", help="train a generator on QM9 graphs")
    t.add_argument("--out", type=Path, required=True, help="generator file to write")
    t.add_argument("--generators", type=positive_int, default=4, help="K (default 4)")
    t.add_argument("--engine", choices=GAN_ENGINES.names(), default="mgo_gan")
    t.add_argument("--classifier-weight", type=nonneg_float, default=None,
                   help="MGAN's generator-classifier term (default: the engine's)")  # fmt: skip
    t.add_argument("--orthogonal-weight", type=nonneg_float, default=None,
                   help="MGO-GAN's orthogonality term (default: the engine's)")  # fmt: skip
    t.add_argument("--minibatch-std", action="store_true",
                   help="give the critic the batch's spread (Karras et al. 2018), against collapse")  # fmt: skip
    t.add_argument("--batch-features", type=nonneg_int, default=0, metavar="N",
                   help="MolGAN's batch features: a size-N summary of the batch before the "
                        "critic's score (default 0: off)")  # fmt: skip
    t.add_argument("--pack", type=positive_int, default=1, metavar="M",
                   help="PacGAN: the critic judges M graphs at once; M must divide "
                        "--batch-size (default 1: off)")  # fmt: skip
    t.add_argument("--mode-seeking", type=nonneg_float, default=0.0, metavar="LAMBDA",
                   help="MSGAN's mode-seeking term's weight (default 0: off)")  # fmt: skip
    t.add_argument("--same-noise", action="store_true",
                   help="MGAN's code: the K generators share each noise vector")  # fmt: skip
    t.add_argument("--valence-weight", type=nonneg_float, default=0.0, metavar="W",
                   help="differentiable penalties on the generator's probabilities: valence "
                        "over the atom type's, isolated atoms, bonds on padding (default 0: "
                        "off)")  # fmt: skip
    t.add_argument("--rl-weight", type=fraction, default=0.0, metavar="LAMBDA",
                   help="MolGAN's reward network: generator loss (1-LAMBDA) WGAN + LAMBDA "
                        "(-reward), in [0, 1] (default 0: off)")  # fmt: skip
    t.add_argument("--rl-warmup", type=nonneg_int, default=0, metavar="STEPS",
                   help="critic steps of GAN-only training before the reward term (default 0)")  # fmt: skip
    t.add_argument("--reward", choices=("validity", "validity_qed"), default="validity",
                   help="the reward the network learns (default validity; validity_qed: QED "
                        "of the valid molecules)")  # fmt: skip
    t.add_argument("--hidden", type=_widths, default=(128, 256, 512))
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument("--batch-size", type=positive_int, default=32)
    t.add_argument("--steps", type=positive_int, default=None, help="critic steps in all")
    t.add_argument("--minutes", type=positive_float, default=None, help="time budget")
    t.add_argument("--molecules", type=positive_int, default=None,
                   help="use the first N encodable QM9 molecules (default all)")  # fmt: skip
    t.add_argument("--resume", action="store_true", help="continue the run in --work-dir")
    t.add_argument("--work-dir", type=Path, default=None,
                   help="resumable state (default: <out>.run/)")  # fmt: skip
    _common(t)
    t.set_defaults(run=run_train)

    s = act.add_parser("sample", help="sample molecules and score them")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("-n", type=positive_int, default=10_000,
                   help="samples (default 10000, the evaluation protocol's)")  # fmt: skip
    s.add_argument("--out", type=Path, default=None,
                   help="write the valid samples' canonical SMILES, one per line")  # fmt: skip
    s.add_argument("--all", action="store_true",
                   help="with --out: one line per sample, an empty SMILES for an invalid one")  # fmt: skip
    s.add_argument("--with-generator", action="store_true",
                   help="with --out: a tab and the sample's generator index after the SMILES")  # fmt: skip
    s.add_argument("--smiles-out", type=Path, default=None,
                   help="deprecated: --out FILE --all")  # fmt: skip
    s.add_argument("--no-fcd", action="store_true", help="skip the Frechet ChemNet Distance")
    _common(s)
    s.set_defaults(run=run_sample)

    c = act.add_parser("compress", help="prune a generator's channels to a MAC budget")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--target-macs", type=ramp_fraction, required=True)
    c.add_argument("--method", choices=("content", "magnitude"), default="content")
    c.add_argument("--steps", type=positive_int, default=None, help="fine-tuning critic steps")
    c.add_argument("--minutes", type=positive_float, default=None, help="fine-tuning budget")
    c.add_argument("--distill-weight", type=nonneg_float, default=10.0)
    _common(c)
    c.set_defaults(run=run_compress)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="qm9pack-format CSVs")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _table(metrics: dict) -> str:
    rows = [("samples", f"{int(metrics['samples'])}")]
    for k in ("validity", "uniqueness", "novelty"):
        rows.append((k, f"{metrics[k]:.1%}"))
    rows.append(("internal diversity", f"{metrics['internal_diversity']:.3f}"))
    if "fcd" in metrics:
        rows.append(("FCD (held-out QM9)", f"{metrics['fcd']:.2f}"))
    return "\n".join(f"{k:<20} {v:>8}" for k, v in rows)


def _coverage_table(coverage: dict) -> str:
    head = f"{'generator':>9} {'samples':>8} {'valid':>8} {'distinct':>8} {'only it':>8}"
    lines = [head]
    for r in coverage["generators"]:
        lines.append(
            f"{r['generator']:>9} {r['samples']:>8} {r['valid']:>8} {r['distinct']:>8} "
            f"{r['only']:>8}"
        )
    lines.append(f"{'all':>9} {'':>8} {'':>8} {coverage['union']:>8}")
    return "\n".join(lines)


def run_train(args: argparse.Namespace) -> int:
    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import CliError
    from chemprune.common.runfolder import check_output_path
    from chemprune.pipeline.generate import GANSettings, load_graphs, train_gan

    set_threads(args.threads)
    if args.steps is None and args.minutes is None:
        raise CliError("give --steps or --minutes (the training budget)")
    if args.batch_size % args.pack:
        raise CliError(f"--pack {args.pack} does not divide --batch-size {args.batch_size}")
    check_output_path(args.out, inputs=[])
    work = args.work_dir or args.out.with_name(args.out.name + ".run")
    check_output_path(work, flag="--work-dir" if args.work_dir else "--out (its .run folder)",
                      kind="folder")  # fmt: skip
    settings = GANSettings(
        engine=args.engine, generators=args.generators, classifier_weight=args.classifier_weight,
        orthogonal_weight=args.orthogonal_weight, hidden=args.hidden, lr=args.lr,
        batch_size=args.batch_size, seed=args.seed, minibatch_std=args.minibatch_std,
        batch_features=args.batch_features, pack=args.pack, mode_seeking=args.mode_seeking,
        same_noise=args.same_noise, valence_weight=args.valence_weight, rl_weight=args.rl_weight,
        rl_warmup=args.rl_warmup, reward=args.reward,
    )  # fmt: skip
    graphs = load_graphs(args.data_dir, molecules=args.molecules, seed=args.seed)
    summary = train_gan(
        graphs, work, args.out, settings=settings, steps=args.steps, minutes=args.minutes,
        resume=args.resume, progress=not args.no_progress, log=print,
    )  # fmt: skip
    if args.json:
        print(json_line({k: v for k, v in summary.items() if k != "history"}))
    else:
        print(f"wrote {args.out} ({summary['steps']} critic steps; resumable state in {work})")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import sys

    from chemprune.cli._common import set_threads
    from chemprune.cli.errors import CliError
    from chemprune.common.atomic import atomic_write_text
    from chemprune.common.runfolder import check_output_path
    from chemprune.engines.gan.checkpoint import load_generator
    from chemprune.pipeline.generate import evaluate_samples, graphs_of, sample_smiles

    set_threads(args.threads)
    out, flag, keep_all = args.out, "--out", args.all
    if args.smiles_out is not None:
        if out is not None:
            raise CliError("give --out or its deprecated alias --smiles-out, not both")
        out, flag, keep_all = args.smiles_out, "--smiles-out", True
    if out is None and (args.all or args.with_generator):
        raise CliError("--all and --with-generator shape the --out file; give --out")
    if out is not None:
        check_output_path(out, flag=flag, inputs=[("--model", args.model)])
    if args.smiles_out is not None:
        print("--smiles-out is deprecated: use --out FILE --all", file=sys.stderr)
    gen, _, ckpt = load_generator(args.model)
    pairs = sample_smiles(gen, args.n, seed=args.seed, with_generator=True)
    samples = [s for s, _ in pairs]
    which = [k for _, k in pairs]
    if out is not None:
        lines = [
            f"{s or ''}\t{k}\n" if args.with_generator else f"{s or ''}\n"
            for s, k in pairs
            if s or keep_all
        ]
        atomic_write_text(out, "".join(lines))
    graphs = graphs_of(ckpt, args.data_dir)
    metrics = evaluate_samples(
        samples, graphs, fcd_reference=None if args.no_fcd else 10_000, generators=which,
        num_generators=gen.num_generators,
    )  # fmt: skip
    if args.json:
        print(json_line({"model": str(args.model), **metrics}))
    else:
        print(_table(metrics))
        if gen.num_generators > 1:
            print()
            print(_coverage_table(metrics["coverage"]))
        if out is not None:
            print(f"wrote {out}")
    return 0


def run_compress(args: argparse.Namespace) -> int:
    from chemprune.cli._common import set_threads
    from chemprune.common.runfolder import check_output_path
    from chemprune.pipeline.generate import compress_gan

    set_threads(args.threads)
    check_output_path(args.out, inputs=[("--model", args.model)])
    result = compress_gan(
        args.model, args.out, target_macs=args.target_macs, method=args.method,
        steps=args.steps, minutes=args.minutes, distill_weight=args.distill_weight,
        seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress, log=print,
    )  # fmt: skip
    if args.json:
        print(json_line(result))
    else:
        ch = ", ".join(f"{a}->{b}" for a, b in result["channels"].values())
        print(
            f"{args.method} pruning: channels {ch}; {result['macs_after']:,} MACs per graph "
            f"({result['macs_fraction']:.1%} of {result['macs_before']:,}); "
            f"{result['finetune_steps']} fine-tuning steps; wrote {args.out}"
        )
    return 0
