"""``reaction-nmt classify train | predict | evaluate``: the reaction-class classifier."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chemprune.common.options import (
    positive_float,
    positive_int,
    ramp_fraction,
    seed_int,
    threads_int,
)

DESCRIPTION = """Classify reactions into the ten USPTO-50k reaction classes (Schneider et al.
2016) with a convolutional network over SMILES tokens of 'reactants>>product'. --data is the
tokenised Liu split folder (src-*.txt[.gz] with <RX_k> class tokens and tgt-*.txt[.gz]) or a CSV
with a 'class' column, 'reactants_can' and 'prod_smiles' and a 'split' column (MHN's file)."""


def _widths(text: str) -> list[int]:
    try:
        w = [int(t) for t in text.split(",")]
    except ValueError:
        w = []
    if not w or min(w) < 1:
        raise argparse.ArgumentTypeError(f"comma-separated positive widths, got {text!r}")
    return w


def add_classify(sub) -> None:
    p = sub.add_parser("classify", help="reaction-class classifier (train, predict, evaluate)",
                       description=DESCRIPTION)  # fmt: skip
    act = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = act.add_parser("train", help="train a classifier", description=DESCRIPTION)
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True, help="run folder (best.pt, last.pt)")
    t.add_argument("--epochs", type=positive_int, default=10)
    t.add_argument("--minutes", type=positive_float, default=None)
    t.add_argument("--channels", type=_widths, default=[128, 128, 128])
    t.add_argument("--embed", type=positive_int, default=64)
    t.add_argument("--kernel-size", type=positive_int, default=5)
    t.add_argument("--max-len", type=positive_int, default=256, help="tokens kept per reaction")
    t.add_argument("--batch-size", type=positive_int, default=64)
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="cosine",
        help="cosine: from --lr to 0 over --epochs (default)",
    )
    t.add_argument("--seed", type=seed_int, default=0)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--threads", type=threads_int, default=None)
    t.set_defaults(func=run_train)

    e = act.add_parser("evaluate", help="accuracy, per-class accuracy, confusion matrix")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--confusion-png", type=Path, default=None)
    e.add_argument("--json", action="store_true")
    e.add_argument("--threads", type=threads_int, default=None)
    e.set_defaults(func=run_evaluate)

    c = act.add_parser("prune", help="remove channels to a FLOP budget, then fine-tune",
                       description="Prune a trained classifier's channels (the same fraction in "
                       "every block) to --flops of its MACs, remove them for real and fine-tune "
                       "on the training split.")  # fmt: skip
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True, help="run folder (best.pt, last.pt)")
    c.add_argument("--method", choices=("cdc", "magnitude", "random"), default="cdc")
    c.add_argument("--flops", type=ramp_fraction, required=True,
                   help="fraction of the MACs kept (1.8x fewer: 0.556)")  # fmt: skip
    c.add_argument("--function", default="symmetric_divergence",
                   help="cdc's discriminant: snr, fdr, symmetric_divergence, t_statistic, an "
                   "expression (chemprune.engines.prune.evolve) or the JSON an evolution run wrote")  # fmt: skip
    c.add_argument("--coarse", type=positive_int, default=None,
                   help="hierarchical labels: this many coarse classes (from the model's "
                   "validation confusion) for the first --coarse-blocks blocks")  # fmt: skip
    c.add_argument("--coarse-blocks", type=positive_int, default=1)
    c.add_argument("--distill", type=float, default=0.0,
                   help="weight of the discriminant-subspace feature distillation (0: none)")  # fmt: skip
    c.add_argument("--epochs", type=positive_int, default=2)
    c.add_argument("--minutes", type=positive_float, default=None)
    c.add_argument("--lr", type=positive_float, default=5e-4)
    c.add_argument("--batch-size", type=positive_int, default=64)
    c.add_argument("--seed", type=seed_int, default=0)
    c.add_argument("--threads", type=threads_int, default=None)
    c.set_defaults(func=run_prune)

    r = act.add_parser("predict", help="the class of each reaction SMILES")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("reactions", nargs="*", help="'reactants>>product' SMILES")
    r.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="file of reactions, one per line (blank and # lines skipped, UTF-8); '-' reads "
        "standard input, and pipes, FIFOs and <(...) work too",
    )
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_predict)


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def run_train(args: argparse.Namespace) -> int:
    from reaction_nmt.classify.data import NUM_CLASSES, Vocabulary, read_split
    from reaction_nmt.classify.model import ReactionCNN
    from reaction_nmt.classify.train import encode_reactions, train_classifier

    _threads(args.threads)
    if args.kernel_size % 2 == 0:
        raise ValueError(f"--kernel-size must be odd, got {args.kernel_size}")
    train = read_split(args.data, "train")
    valid = read_split(args.data, "valid")
    vocab = Vocabulary.build(train)
    model = ReactionCNN(vocab_size=len(vocab), num_classes=NUM_CLASSES, embed_dim=args.embed,
                        channels=args.channels, kernel_size=args.kernel_size)  # fmt: skip
    summary = train_classifier(
        encode_reactions(train, vocab, args.max_len), encode_reactions(valid, vocab, args.max_len),
        vocab, args.out, model=model, max_len=args.max_len, epochs=args.epochs,
        minutes=args.minutes, lr=args.lr, lr_schedule=args.lr_schedule,
        batch_size=args.batch_size, seed=args.seed,
        resume=args.resume, data={"source": str(args.data), "train": len(train),
                                  "valid": len(valid)}, log=print,
    )  # fmt: skip
    print(f"best validation accuracy {summary['best_valid_accuracy']:.4f}; wrote {summary['best']}")
    return 0


def confusion_png(conf: list[list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    c = np.array(conf, dtype=float)
    norm = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(c)):
        for j in range(len(c)):
            if c[i, j]:
                ax.text(j, i, int(c[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ticks = range(len(c))
    ax.set_xticks(ticks, [str(k + 1) for k in ticks])
    ax.set_yticks(ticks, [str(k + 1) for k in ticks])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def run_evaluate(args: argparse.Namespace) -> int:
    from reaction_nmt.classify.data import read_split
    from reaction_nmt.classify.train import encode_reactions, evaluate_classifier, load_classifier

    _threads(args.threads)
    model, vocab, ckpt = load_classifier(args.model)
    reactions = read_split(args.data, args.split, model.num_classes)
    x, y = encode_reactions(reactions, vocab, ckpt["max_len"])
    m = evaluate_classifier(model, x, y, model.num_classes)
    if args.confusion_png is not None:
        confusion_png(m["confusion"], args.confusion_png,
                      f"{args.split}: accuracy {m['accuracy']:.1%}")  # fmt: skip
    if args.json:
        print(json.dumps({"model": str(args.model), "split": args.split, **m}))
    else:
        print(f"{args.split}: {m['n']} reactions, accuracy {m['accuracy']:.2%}")
        for k, v in m["per_class"].items():
            print(f"  class {k:>2}: " + ("absent" if v is None else f"{v:.2%}"))
        if args.confusion_png is not None:
            print(f"wrote {args.confusion_png}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import torch

    from reaction_nmt.classify.data import ClassifiedReaction, check_reaction
    from reaction_nmt.classify.train import encode_reactions, load_classifier, predict_logits
    from reaction_nmt.formats import DataFormatError
    from reaction_nmt.predict import gather_reactions

    reactions = gather_reactions(args.reactions, args.file)
    model, vocab, ckpt = load_classifier(args.model)
    good, failed = [], 0
    for text in reactions:
        parts = text.split(">>")
        try:
            if len(parts) != 2:
                raise DataFormatError(f"reaction {text!r} is not 'reactants>>product'")
            reaction = ClassifiedReaction(f"reaction {text!r}", parts[0], parts[1], 0)
            good.append(check_reaction(reaction, parse=True))
        except DataFormatError as err:
            failed += 1
            print(f"reaction-nmt: error: {err}", file=sys.stderr)
    out = []
    if good:
        x, _ = encode_reactions(good, vocab, ckpt["max_len"])
        probs = torch.softmax(predict_logits(model, x), 1)
        for r, p in zip(good, probs, strict=True):
            k = int(p.argmax())
            out.append({"reaction": r.smiles, "class": k + 1, "probability": float(p[k])})
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for o in out:
            print(f"{o['reaction']}\tclass {o['class']}\t{o['probability']:.3f}")
    return 1 if failed else 0


def run_prune(args: argparse.Namespace) -> int:
    import copy

    import torch

    from chemprune.engines.prune.discriminant import hierarchical_labels
    from reaction_nmt.classify.data import read_split
    from reaction_nmt.classify.prune import discriminant_distillation, prune_classifier
    from reaction_nmt.classify.train import (
        encode_reactions,
        evaluate_classifier,
        load_classifier,
        train_classifier,
    )

    _threads(args.threads)
    model, vocab, ckpt = load_classifier(args.model)
    train = encode_reactions(read_split(args.data, "train", model.num_classes), vocab,
                             ckpt["max_len"])  # fmt: skip
    valid = encode_reactions(read_split(args.data, "valid", model.num_classes), vocab,
                             ckpt["max_len"])  # fmt: skip
    from chemprune.engines.prune.evolve import resolve_function

    function = resolve_function(args.function)  # a ValueError is a clear error of the CLI
    dense = evaluate_classifier(model, *valid, model.num_classes)
    dense_acc = dense["accuracy"]
    coarse = None if args.coarse is None else hierarchical_labels(dense["confusion"], args.coarse)
    teacher = copy.deepcopy(model)
    perm = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(args.seed))
    report = prune_classifier(
        model, (train[0][perm], train[1][perm]), method=args.method, flops_fraction=args.flops,
        function=function, coarse=coarse, coarse_groups=args.coarse_blocks if coarse else 0,
        seed=args.seed,
    )  # fmt: skip
    pruned_acc = evaluate_classifier(model, *valid, model.num_classes)["accuracy"]
    loss_fn, extra = None, []
    if args.distill > 0:
        loss_fn, extra = discriminant_distillation(model, teacher, train, weight=args.distill)
    summary = train_classifier(
        train, valid, vocab, args.out, model=model, max_len=ckpt["max_len"], epochs=args.epochs,
        minutes=args.minutes, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        data={**ckpt.get("data", {}), "pruned_from": str(args.model), **report},
        log=print, loss_fn=loss_fn, extra_parameters=extra,
    )  # fmt: skip
    ch = ", ".join(f"{a}->{b}" for a, b in zip(report["channels_before"],
                                                report["channels_after"], strict=True))  # fmt: skip
    print(f"{args.method}: channels {ch} ({report['flops_fraction']:.1%} of the MACs); validation "
          f"accuracy {dense_acc:.4f} dense, {pruned_acc:.4f} pruned, "
          f"{summary['best_valid_accuracy']:.4f} fine-tuned; wrote {summary['best']}")  # fmt: skip
    return 0
