"""``reaction-nmt translate``, ``evaluate`` and ``predict``: beam search and scoring."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from chemprune.common.options import positive_int, threads_int
from reaction_nmt.formats import read_lines
from reaction_nmt.prepare import PreparedData
from reaction_nmt.scoring import format_table, read_nbest, score_predictions
from reaction_nmt.tokenize import detokenize


def _beam_options(p: argparse.ArgumentParser, *, n_best: int = 5) -> None:
    p.add_argument("--model", type=Path, required=True, help="OpenNMT-py checkpoint")
    p.add_argument("--beam-size", type=positive_int, default=5)
    p.add_argument("--n-best", type=positive_int, default=n_best)
    p.add_argument("--batch-size", type=positive_int, default=64, help="sources per batch")
    p.add_argument(
        "--max-length", type=positive_int, default=300, help="longest prediction in tokens"
    )
    p.add_argument("--threads", type=threads_int, default=None, help="torch CPU threads")


def _translator(args: argparse.Namespace):
    import torch

    from reaction_nmt.backend import Translator

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n_best > args.beam_size:
        from reaction_nmt.backend import BackendError

        raise BackendError(
            f"--n-best {args.n_best} is larger than --beam-size {args.beam_size} (a beam keeps "
            "only beam-size hypotheses)"
        )
    return Translator(
        args.model,
        beam_size=args.beam_size,
        n_best=args.n_best,
        batch_size=args.batch_size,
        max_length=args.max_length,
        verbose=getattr(args, "verbose", False),
    )


def translate_file(args: argparse.Namespace, src: Path, out: Path) -> dict:
    """Translate a tokenised source file; ``n_best`` lines per source to ``out`` and the
    log-probabilities to ``out.scores``. Returns timing numbers."""
    sources = [line.strip() for line in read_lines(src) if line.strip()]
    translator = _translator(args)
    start = time.perf_counter()
    results = translator.translate(sources)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fh, open(f"{out}.scores", "w") as fs:
        for nbest in results:
            for tokens, score in nbest:
                fh.write(tokens + "\n")
                fs.write(f"{score:.6f}\n")
    return {
        "sources": len(sources),
        "seconds": seconds,
        "reactions_per_s": len(sources) / seconds if seconds else float("inf"),
        "beam_size": args.beam_size,
        "n_best": args.n_best,
    }


def add_translate(sub) -> None:
    p = sub.add_parser(
        "translate",
        help="beam search over a tokenised source file (n-best lines per source)",
        description="Writes n_best predictions per source line to --out, scores to --out.scores.",
    )
    _beam_options(p)
    p.add_argument("--src", type=Path, required=True, help="tokenised sources (src-*.txt)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    from chemprune.common.runfolder import check_output_path

    if not args.src.is_file():
        print(f"reaction-nmt: error: {args.src} does not exist", file=sys.stderr)
        return 2
    inputs = [("--src", args.src), ("--model", args.model)]
    check_output_path(args.out, inputs=inputs)
    check_output_path(f"{args.out}.scores", flag="--out (its .scores file)", inputs=inputs)
    info = translate_file(args, args.src, args.out)
    print(
        f"translated {info['sources']} sources in {info['seconds']:.1f} s "
        f"({info['reactions_per_s']:.1f} reactions/s) -> {args.out}"
    )
    return 0


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="top-1/2/3/5 accuracy by canonical exact match, invalid-SMILES rate",
        description=(
            "Score n-best predictions against targets. Either --predictions FILE --targets FILE "
            "(tokenised or plain SMILES, n_best lines per target), or --model M --data DIR "
            "--split test, which translates first."
        ),
    )
    p.add_argument("--predictions", type=Path)
    p.add_argument("--targets", type=Path)
    p.add_argument("--model", type=Path)
    p.add_argument("--data", type=Path, help="prepared folder (with --model)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=positive_int, help="only the first N sources (with --model)")
    p.add_argument("--beam-size", type=positive_int, default=5)
    p.add_argument("--n-best", type=positive_int, default=5)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--max-length", type=positive_int, default=300)
    p.add_argument("--threads", type=threads_int, default=None)
    p.add_argument("--json", type=Path, help="write the result as JSON here")
    p.add_argument("--out-dir", type=Path, help="where --model's predictions go")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from chemprune.common.runfolder import check_output_path

    if args.json is not None:
        check_output_path(args.json, flag="--json")
    if args.out_dir is not None:
        check_output_path(args.out_dir, flag="--out-dir", kind="folder")
    timing = None
    if args.model is not None:
        if args.data is None:
            print("reaction-nmt: error: --model needs --data", file=sys.stderr)
            return 2
        data = PreparedData(args.data)
        src, tgt = data.src(args.split), data.tgt(args.split)
        out_dir = args.out_dir or args.model.parent
        if args.limit:
            out_dir.mkdir(parents=True, exist_ok=True)
            for path, name in ((src, "src"), (tgt, "tgt")):
                lines = read_lines(path)[: args.limit]
                (out_dir / f"{name}-{args.split}-first{args.limit}.txt").write_text("".join(lines))
            src = out_dir / f"src-{args.split}-first{args.limit}.txt"
            tgt = out_dir / f"tgt-{args.split}-first{args.limit}.txt"
        predictions = out_dir / f"pred-{args.split}-{args.model.stem}.txt"
        timing = translate_file(args, src, predictions)
        targets = tgt
    elif args.predictions is not None and args.targets is not None:
        predictions, targets = args.predictions, args.targets
    else:
        print("reaction-nmt: error: give --predictions and --targets, or --model", file=sys.stderr)
        return 2
    for path in (predictions, targets):
        if not Path(path).is_file():
            print(f"reaction-nmt: error: {path} does not exist", file=sys.stderr)
            return 2
    target_lines = [detokenize(line) for line in read_lines(targets) if line.strip()]
    nbest = [[detokenize(p) for p in group] for group in read_nbest(predictions, args.n_best)]
    result = score_predictions(target_lines, nbest)
    result["predictions"] = str(predictions)
    result["targets"] = str(targets)
    if timing:
        result["translation"] = timing
        result["model"] = str(args.model)
    print(format_table(result, title=f"{predictions}"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="ranked products for reactant SMILES",
        description=(
            "Each argument is one reaction's inputs: '.'-separated molecules, or "
            "'reactants>reagents' for a model trained on separated inputs. --input reads more: "
            "a text file with one per line, or a column of a CSV/TSV file. --format jsonl/csv "
            "writes one record per (input, rank) with the input's line number; a bad input is "
            "named by its line on stderr, gets one record with 'error', and the exit code is 1."
        ),
    )
    _beam_options(p)
    p.add_argument("inputs", nargs="*", help="reactant (and reagent) SMILES")
    p.add_argument(
        "--input",
        "--file",
        dest="input",
        metavar="FILE",
        help="file of reactions: plain text, one per line (blank and # lines skipped, UTF-8), "
        "or a CSV/TSV file with a header (a .csv/.tsv name, or --column); '-' reads standard "
        "input, and pipes, FIFOs and <(...) work too",
    )
    p.add_argument(
        "--column",
        metavar="NAME",
        help="the header name of the reactions' column in a CSV/TSV --input (default: the only "
        "column)",
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument(
        "--format",
        choices=("text", "jsonl", "csv"),
        default=None,
        help="text (default), jsonl (one JSON object per input and rank) or csv (the same "
        "fields with a header): source, line, input, rank, product, valid, score, probability, "
        "error",
    )
    form.add_argument("--json", action="store_true", help="print one JSON list (the older format)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write the answers here (atomically; never over an input) instead of standard output",
    )
    p.add_argument(
        "--verbose", action="store_true", help="show OpenNMT-py's log lines (hidden otherwise)"
    )
    p.set_defaults(func=run_predict)


def _run_mode(model: Path) -> str | None:
    from reaction_nmt.runinfo import RUN_INFO, read_run_info

    info = read_run_info(model.parent / RUN_INFO)  # one-line error naming the file if malformed
    return None if info is None else info.get("mode")


def run_predict(args: argparse.Namespace) -> int:
    """Parse -> read the rows -> prepare each -> translate each distinct source once -> fan the
    answers out to every row (repeats included) -> write them in the chosen format."""
    from chemprune.common.options import printable
    from chemprune.common.runfolder import check_output_path
    from reaction_nmt import predict_io
    from reaction_nmt.predict import InvalidInput, prepare_input, rank_products

    rows = predict_io.gather_rows(args.inputs, args.input, args.column)
    if args.output is not None and args.output != "-":
        inputs = [("--model", args.model)]
        if args.input is not None and args.input != "-":
            inputs.append(("--input", args.input))
        check_output_path(args.output, flag="--output", inputs=inputs)
    mode = _run_mode(args.model)
    prepared: list[str | None] = []
    errors: dict[int, str] = {}  # row index -> message
    for i, row in enumerate(rows):
        source, message = None, row.error
        if message is None:
            try:
                source = prepare_input(row.text, mode=mode)
            except InvalidInput as err:
                message = str(err)
        if message is not None:
            errors[i] = message
            print(f"reaction-nmt: error: {printable(f'{row.where()}: {message}')}", file=sys.stderr)
        prepared.append(source)
    ranked = dict.fromkeys(s for s in prepared if s is not None)  # each distinct source once
    if ranked:
        outputs = _translator(args).translate(list(ranked))
        ranked = {s: rank_products(nbest) for s, nbest in zip(ranked, outputs, strict=True)}
    answers = [errors[i] if s is None else ranked[s] for i, s in enumerate(prepared)]
    fmt = "json" if args.json else (args.format or "text")
    predict_io.write_output(predict_io.render(fmt, rows, answers), args.output)
    return 1 if errors else 0
