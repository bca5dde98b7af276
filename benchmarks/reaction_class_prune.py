"""Class-discriminative compression of a reaction-class classifier, against its controls (issue 21).

The task: the ten reaction classes of USPTO-50k (Liu split: 40,029 / 5,004 / 5,004), a
``ReactionCNN`` over SMILES tokens of ``reactants>>product`` (``--dense``, or trained here for
``--dense-epochs``). Rows, at ``--flops`` fractions of the dense MACs (1.8x and 3x fewer by
default), each fine-tuned for ``--finetune-epochs`` on the training split with the same
recipe, saved as soon as done (``--work-dir/rows``; a rerun skips it):

================  ================================================================================
cdc               symmetric divergence, hierarchical labels (``--coarse`` classes from the dense
                  model's validation confusion on the first block), discriminant-subspace
                  distillation (``--distill``)
cdc_plain         the same score without hierarchy and distillation
evolved           CDC with the expression evolved on the proxy tasks (``--evolved`` file, or the
                  search here: ``deap.gp`` seeded with SNR/FDR/SD/t/L1/L2; fitness = the mean
                  validation accuracy of (a) a small classifier of the first ``--proxy-classes``
                  classes pruned to 1/3 of its MACs, one fine-tuning epoch and (b) MNIST LeNet-5
                  with 60% of its channels removed, 300 fine-tuning iterations)
snr, fdr, sd,     every seed function alone (the evolved one must beat them all on this task,
t_statistic       which it was not evolved on)
l1                L1-magnitude channels
random            random channels
torch_pruning     Torch-Pruning's MetaPruner (L1 importance, the same ratio per layer)
dense_continued   the dense model fine-tuned for the same epochs (the under-training control)
scratch           each row's small architecture trained from scratch for the dense epochs plus
                  the fine-tuning epochs (Liu et al. 2019)
================  ================================================================================

Accuracy on the test split, and reactions/s at batch 64 on ``--threads`` (all models timed in
one process, interleaved; the load average is recorded). Also the fingerprint baseline
(difference fingerprints + logistic regression) on the same test split.

    .venv/bin/python benchmarks/reaction_class_prune.py --work-dir runs/rcp      # hours
    .venv/bin/python benchmarks/reaction_class_prune.py --quick --data <tiny liu folder>
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from harness import RowStore, error_text, header, loadavg, pyplot, save_figure, write_results  # noqa: E402

from chemprune.common.atomic import atomic_write_text  # noqa: E402
from chemprune.engines.prune.discriminant import hierarchical_labels  # noqa: E402
from chemprune.engines.prune.evolve import compile_expression, evolve  # noqa: E402
from reaction_nmt.classify.data import Vocabulary, read_split  # noqa: E402
from reaction_nmt.classify.model import ReactionCNN  # noqa: E402
from reaction_nmt.classify.prune import (  # noqa: E402
    _macs,
    discriminant_distillation,
    keep_counts,
    prune_classifier,
)
from reaction_nmt.classify.train import (  # noqa: E402
    classifier_file,
    encode_reactions,
    evaluate_classifier,
    load_classifier,
    predict_logits,
    train_classifier,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "uspto_50k" / "liu_split_tokenized"
SEED_FUNCTIONS = {"snr": "snr", "fdr": "fdr", "sd": "symmetric_divergence",
                  "t_statistic": "t_statistic"}  # fmt: skip
METHODS = ("cdc", "cdc_plain", "evolved", *SEED_FUNCTIONS, "l1", "random", "torch_pruning",
           "dense_continued", "scratch")  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def dense_model(args, data, vocab) -> Path:
    if args.dense is not None:
        return args.dense
    run = Path(args.work_dir) / "dense"
    best = run / "best.pt"
    if best.exists() and (run / "done").exists():
        return best
    torch.manual_seed(args.seed)
    model = ReactionCNN(vocab_size=len(vocab), channels=args.channels, embed_dim=args.embed)
    train_classifier(
        data["train"], data["valid"], vocab, run, model=model, max_len=args.max_len,
        epochs=args.dense_epochs, minutes=args.dense_minutes, lr=args.lr, seed=args.seed,
        lr_schedule=args.lr_schedule, resume=(run / "last.pt").exists(), log=log,
    )  # fmt: skip
    (run / "done").write_text("")
    return best


def finetune(model, name, data, vocab, args, *, loss_fn=None, extra=(), epochs=None):
    run = Path(args.work_dir) / "runs" / name
    s = train_classifier(
        data["train"], data["valid"], vocab, run, model=model, max_len=args.max_len,
        epochs=epochs or args.finetune_epochs, lr=args.finetune_lr, seed=args.seed,
        lr_schedule=args.lr_schedule, resume=(run / "last.pt").exists(), log=log,
        loss_fn=loss_fn, extra_parameters=extra,
    )  # fmt: skip
    best, _, _ = load_classifier(s["best"])
    return best, s


def proxy_fitness(args, data, vocab):
    """Fitness of an expression on the proxy: a small classifier of the first classes."""
    k = args.proxy_classes
    sel = {s: data[s][1] < k for s in ("train", "valid")}
    sub = {s: (data[s][0][sel[s]][: args.proxy_size], data[s][1][sel[s]][: args.proxy_size])
           for s in ("train", "valid")}  # fmt: skip
    torch.manual_seed(0)
    base = ReactionCNN(vocab_size=len(vocab), num_classes=k, channels=(64, 64), embed_dim=32)
    train_classifier(sub["train"], sub["valid"], vocab, Path(args.work_dir) / "proxy_dense",
                     model=base, max_len=args.max_len, epochs=args.proxy_epochs, lr=args.lr,
                     resume=(Path(args.work_dir) / "proxy_dense" / "last.pt").exists())  # fmt: skip
    counter = [0]

    def fitness(fn) -> float:
        m = copy.deepcopy(base)
        prune_classifier(m, sub["train"], method="cdc", flops_fraction=1 / 3, function=fn)
        counter[0] += 1
        run = Path(args.work_dir) / "proxy_runs" / f"c{counter[0]}"
        train_classifier(sub["train"], sub["valid"], vocab, run, model=m, max_len=args.max_len,
                         epochs=1, lr=args.finetune_lr, save_every=1e9)  # fmt: skip
        return evaluate_classifier(m, *sub["valid"], k)["accuracy"]

    return fitness


def mnist_fitness(args):
    """Fitness on LeNet-5 (Caffe's) on MNIST: CDC with the expression removes 60% of the
    channels of conv1, conv2 and fc1, 300 fine-tuning iterations, validation accuracy."""
    from lenet import LeNet5Caffe
    from mnist_prune import Caffe, Data, error, train_iters

    from chemprune.engines.prune import PRUNERS, channel_groups, shrink

    data = Data(args.mnist)
    path = Path(args.work_dir) / "mnist_dense.pt"
    torch.manual_seed(0)
    base = LeNet5Caffe()
    if path.exists():
        base.load_state_dict(torch.load(path, weights_only=True))
    else:
        data.reseed(0, "dense")
        train_iters(base, data, Caffe(base), args.mnist_iters)
        torch.save(base.state_dict(), path)

    def fitness(fn) -> float:
        m = copy.deepcopy(base)
        groups = channel_groups(m, data.xtr[:2], exclude=["fc2"])
        pruner = PRUNERS.get("cdc")(groups=groups, sparsity=0.6, scope="layer", function=fn)
        for i in range(0, 2000, 500):
            pruner.observe(m, data.xtr[i : i + 500], data.ytr[i : i + 500])
        pruner.apply(m)
        shrink(m, groups)
        data.reseed(0, "finetune")
        train_iters(m, data, Caffe(m, start_iter=args.mnist_iters), 300)
        return 1 - error(m, data.xval, data.yval)

    return fitness


def evolved_expression(args, data, vocab) -> str:
    if args.evolved is not None:
        p = Path(args.evolved)
        return json.loads(p.read_text())["best"] if p.exists() else str(args.evolved)
    path = Path(args.work_dir) / "evolved.json"
    if path.exists():
        return json.loads(path.read_text())["best"]
    parts = []
    if "reactions" in args.proxy:
        parts.append(proxy_fitness(args, data, vocab))
    if "mnist" in args.proxy:
        parts.append(mnist_fitness(args))
    if not parts:
        raise ValueError(f"--proxy must name reactions and/or mnist, got {args.proxy}")

    def fitness(fn) -> float:  # the mean over the proxies
        return sum(f(fn) for f in parts) / len(parts)

    res = evolve(fitness, population=args.population, generations=args.generations,
                 seed=args.seed, log=log)  # fmt: skip
    atomic_write_text(path, json.dumps({"best": res.best, "fitness": res.fitness,
                                        "history": res.history, "evaluated": res.evaluated},
                                       indent=1) + "\n")  # fmt: skip
    return res.best


def run_row(method: str, frac: float, dense_path: Path, data, vocab, args) -> tuple:
    dense, _, _ = load_classifier(dense_path)
    name = f"{method}_{frac:.3f}" if method not in ("dense_continued",) else method
    rep: dict = {"method": method, "flops_target": frac}
    if method == "dense_continued":
        model, s = finetune(copy.deepcopy(dense), name, data, vocab, args)
        return name, model, {**rep, "finetune": s["best_valid_accuracy"]}
    if method == "scratch":
        torch.manual_seed(args.seed)
        widths = keep_counts(dense, frac)
        model = ReactionCNN(vocab_size=len(vocab), channels=widths, embed_dim=dense.embed_dim)
        model, s = finetune(model, name, data, vocab, args,
                            epochs=args.dense_epochs + args.finetune_epochs)  # fmt: skip
        return name, model, {**rep, "channels_after": widths}
    model = copy.deepcopy(dense)
    if method == "torch_pruning":
        import torch_pruning as tp

        example = data["train"][0][:8, :64]
        ratio = 1 - keep_counts(dense, frac)[0] / dense.channels[0]
        tp.pruner.MetaPruner(model, example, tp.importance.MagnitudeImportance(p=1),
                             pruning_ratio=ratio, ignored_layers=[model.head]).step()  # fmt: skip
        rep["channels_after"] = model.channels
    else:
        kw: dict = {"method": "cdc"}
        if method == "l1":
            kw = {"method": "magnitude"}
        elif method == "random":
            kw = {"method": "random"}
        elif method in SEED_FUNCTIONS:
            kw["function"] = SEED_FUNCTIONS[method]
        elif method == "evolved":
            kw["function"] = compile_expression(evolved_expression(args, data, vocab))
        elif method == "cdc" and args.coarse:
            conf = evaluate_classifier(dense, *data["valid"], dense.num_classes)["confusion"]
            kw.update(coarse=hierarchical_labels(conf, args.coarse), coarse_groups=1)
        rep.update(
            prune_classifier(model, data["train"], flops_fraction=frac, seed=args.seed, **kw)
        )
    rep["valid_accuracy_untuned"] = evaluate_classifier(model, *data["valid"],
                                                        dense.num_classes)["accuracy"]  # fmt: skip
    loss_fn, extra = None, []
    if method == "cdc" and args.distill > 0:
        loss_fn, extra = discriminant_distillation(model, dense, data["train"], weight=args.distill)
    model, s = finetune(model, name, data, vocab, args, loss_fn=loss_fn, extra=extra)
    return name, model, rep


def throughput(models: dict, x: torch.Tensor, args) -> dict[str, float]:
    out: dict[str, list[float]] = {n: [] for n in models}
    for m in models.values():
        predict_logits(m, x[:64], 64)
    for rep in range(args.repeats):
        names = list(models)
        for n in names[rep % len(names) :] + names[: rep % len(names)]:
            t = time.perf_counter()
            predict_logits(models[n], x, 64)
            out[n].append(len(x) / (time.perf_counter() - t))
    return {n: statistics.median(v) for n, v in out.items()}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--dense", type=Path, default=None)
    p.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    p.add_argument("--flops", type=lambda s: [float(x) for x in s.split(",")],
                   default=[1 / 1.8, 1 / 3])  # fmt: skip
    p.add_argument("--channels", type=lambda s: [int(x) for x in s.split(",")],
                   default=[256, 256, 256])  # fmt: skip
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--dense-epochs", type=int, default=12)
    p.add_argument("--dense-minutes", type=float, default=None)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="of the dense training and every row's (fine-)tuning: cosine to 0",
    )
    p.add_argument("--coarse", type=int, default=4)
    p.add_argument("--distill", type=float, default=1.0)
    p.add_argument("--evolved", default=None, help="an expression, or a JSON file with 'best'")
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--proxy", type=lambda s: s.split(","), default=["reactions", "mnist"],
                   help="the proxy tasks the function is evolved on")  # fmt: skip
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "datasets" / "mnist")
    p.add_argument("--mnist-iters", type=int, default=2000)
    p.add_argument("--proxy-classes", type=int, default=5)
    p.add_argument("--proxy-size", type=int, default=6000)
    p.add_argument("--proxy-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-fingerprint", action="store_true")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "reaction_class_prune")
    p.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/reaction_class_prune.json"
    )
    p.add_argument(
        "--plot", type=Path, default=ROOT / "benchmarks/results/reaction_class_prune.png"
    )
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.channels, a.embed, a.dense_epochs, a.finetune_epochs = [16, 16], 16, 2, 1
        a.population, a.generations, a.proxy_size, a.proxy_epochs = 4, 1, 200, 1
        a.proxy_classes, a.repeats, a.coarse, a.mnist_iters = 2, 1, 2, 50
    return a


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method in METHODS:
        pts = sorted((1 / r["flops_fraction"], 100 * r["test_accuracy"]) for r in rows
                     if r.get("method") == method and "test_accuracy" in r)  # fmt: skip
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=method)
    dense = [r for r in rows if r.get("method") == "dense"]
    if dense:
        ax.axhline(100 * dense[0]["test_accuracy"], color="k", ls="--", label="dense")
    ax.set_xlabel("FLOP reduction (x)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    store = RowStore(Path(args.work_dir) / "rows", log=log)  # a failed row is saved too
    store.folder.mkdir(parents=True, exist_ok=True)
    split = {s: read_split(args.data, s) for s in ("train", "valid", "test")}
    vocab = Vocabulary.build(split["train"])
    if args.dense is not None:
        vocab = load_classifier(args.dense)[1]
    data = {s: encode_reactions(r, vocab, args.max_len) for s, r in split.items()}
    dense_path = dense_model(args, data, vocab)
    dense, _, _ = load_classifier(dense_path)
    models = {"dense": dense}
    rows = [{"row": "dense", "method": "dense", "channels": dense.channels}]
    todo = [(m, 1.0) for m in args.methods if m == "dense_continued"]
    todo += [(m, f) for f in args.flops for m in args.methods if m != "dense_continued"]
    names = {(m if m == "dense_continued" else f"{m}_{f:.3f}"): (m, f) for m, f in todo}
    for name, saved in store.resume(names):
        if saved is not None:
            rows.append(saved)
            if store.model_path(name).exists():
                models[name] = load_classifier(store.model_path(name))[0]
            continue
        method, frac = names[name]
        log(f"{name}: running")
        s0 = time.perf_counter()
        try:
            name, model, rep = run_row(method, frac, dense_path, data, vocab, args)
            store.save_model(name, classifier_file(model, vocab, args.max_len))
            models[name] = model
        except Exception as err:  # recorded; the run goes on
            rep = {"method": method, "flops_target": frac, "error": error_text(err)}
            log(f"{name}: failed: {rep['error']}")
        rep.update(row=name, seconds=time.perf_counter() - s0)
        store.save(name, rep)
        rows.append(rep)
    full = _macs(dense, dense.channels, 100)
    speeds = throughput(models, data["test"][0][:1024], args)
    for r in rows:
        m = models.get(r["row"])
        if m is None:
            continue
        r.update(evaluate_classifier(m, *data["test"], dense.num_classes))
        r["test_accuracy"] = r.pop("accuracy")
        r["flops_fraction"] = _macs(m, m.channels, 100) / full
        r["channels"] = m.channels
        r["reactions_per_s_b64"] = speeds[r["row"]]
        r.pop("confusion", None) if r["row"] != "dense" else None
    fp = None
    if not args.no_fingerprint:
        from reaction_nmt.classify.fingerprint import fingerprint_baseline

        fp = fingerprint_baseline(split["train"], split["test"])
        fp.pop("pred")
    result = {
        **header("reaction_class_prune", args),
        "load_average": loadavg(), "rows": rows, "fingerprint_baseline": fp,
        "seconds": time.time() - t0,
    }  # fmt: skip
    write_results(args.out, result)
    plot(rows, args.plot)
    head = f"{'row':<22} {'channels':<18} {'FLOPs':>6} {'test acc':>8} {'react/s':>8}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        if "test_accuracy" not in r:
            print(f"{r['row']:<22} {r.get('error', 'failed')}")
            continue
        ch = ",".join(map(str, r["channels"]))
        print(f"{r['row']:<22} {ch:<18} {r['flops_fraction']:>6.1%} {r['test_accuracy']:>8.2%} "
              f"{r['reactions_per_s_b64']:>8.0f}")  # fmt: skip
    if fp:
        print(f"fingerprint baseline: {fp['accuracy']:.2%} on {fp['n']} test reactions")
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
