"""Thin adapter over OpenNMT-py 3.5 (the only module that imports ``onmt``).

Everything the rest of the package needs from the translation toolkit goes through here:
training from a configuration dictionary (with a wall-clock budget), checkpoint discovery,
loading, averaging and parameter counts, and n-best beam search on lists of tokenised
sources. A later backend (eole) replaces this module only.

OpenNMT-py 3.5.1 under torch >= 2.6 needs two fixes (ENVIRONMENT.md, trap 5): its checkpoints
hold an ``argparse.Namespace``, which ``torch.load(weights_only=True)`` must be allowed to
rebuild, and data-loader workers must be off (``num_workers: 0``, set by every preset).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from reaction_nmt.errors import BackendError
from reaction_nmt.modelfile import load_checkpoint, onmt_loads

_onmt_loads = onmt_loads  # the older private name

__all__ = [
    "BackendError",
    "TrainResult",
    "Translator",
    "average_checkpoints",
    "checkpoints",
    "count_parameters",
    "load_checkpoint",
    "onmt_version",
    "train",
    "unknown_options",
]

_CKPT = re.compile(r"_step_(\d+)\.pt$")


def _setup() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"onmt\.")
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp.*", category=FutureWarning)


def onmt_version() -> str:
    _setup()
    import onmt

    return onmt.__version__


def _train_parser():
    _setup()
    from onmt.bin.train import _get_parser

    return _get_parser()


def unknown_options(config: dict) -> list[str]:
    """Keys of ``config`` that OpenNMT-py's training options do not know."""
    known = {a.dest for a in _train_parser()._actions}
    return sorted(k for k in config if k not in known)


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    step: int
    seconds: float
    stopped_by_budget: bool


@contextlib.contextmanager
def _time_budget(deadline: float | None, flag: dict) -> Iterator[None]:
    """Make OpenNMT-py's training iterator end at ``deadline``; its trainer then saves the
    final checkpoint itself, as after ``train_steps``."""
    import onmt.train_single as ts
    from onmt.constants import CorpusTask

    original = ts.build_dynamic_dataset_iter
    if deadline is None:
        yield
        return

    def limited(it):
        for n, item in enumerate(it):
            if n and time.monotonic() >= deadline:
                flag["stopped"] = True
                return
            yield item

    def build(opt, transforms_cls, vocabs, task=CorpusTask.TRAIN, **kw):
        it = original(opt, transforms_cls, vocabs, task=task, **kw)
        return limited(it) if task == CorpusTask.TRAIN and it is not None else it

    ts.build_dynamic_dataset_iter = build
    try:
        yield
    finally:
        ts.build_dynamic_dataset_iter = original


@contextlib.contextmanager
def _train_loss(hook) -> Iterator[None]:
    """Let ``hook(compute, opt=, model=, vocab=)`` replace the *training* loss module that
    OpenNMT-py's ``build_trainer`` makes with ``LossCompute.from_opts``; its trainer then calls
    ``hook``'s module as ``loss(batch, output, attns, trunc_start=, trunc_size=)`` on every
    batch. Validation keeps OpenNMT-py's own loss."""
    if hook is None:
        yield
        return
    import onmt.trainer as trainer

    original = trainer.LossCompute

    class HookedLossCompute(original):
        @classmethod
        def from_opts(cls, opt, model, vocab, train=True):
            compute = original.from_opts(opt, model, vocab, train=train)
            return hook(compute, opt=opt, model=model, vocab=vocab) if train else compute

    trainer.LossCompute = HookedLossCompute
    try:
        yield
    finally:
        trainer.LossCompute = original


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Append OpenNMT-py's log to ``path``. Its own ``log_file`` loses the file after the
    first data iterator is built (it calls ``init_logger()`` again, dropping the handler), so
    the file handler sits on the root logger, which the "onmt" logger propagates to."""
    handler = logging.FileHandler(path)
    handler.addFilter(logging.Filter("onmt"))
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def checkpoints(run_dir: Path) -> list[Path]:
    """``model_step_N.pt`` files of a run, by step."""
    found = [p for p in Path(run_dir).glob("*_step_*.pt") if _CKPT.search(p.name)]
    return sorted(found, key=lambda p: int(_CKPT.search(p.name).group(1)))


def train(
    config: dict, *, max_seconds: float | None = None, loss_hook: Callable | None = None
) -> TrainResult:
    """Train with OpenNMT-py's own trainer; the YAML written beside the checkpoints is what ran.

    ``max_seconds`` stops training at the first batch after the budget and saves a checkpoint.
    ``loss_hook(compute, opt=, model=, vocab=)`` may return a module that replaces OpenNMT-py's
    training loss (``compute``, a ``LossCompute``) for this run, e.g. to add a distillation
    term; it is called once, when the trainer is built.
    """
    bad = unknown_options(config)
    if bad:
        raise BackendError(f"unknown OpenNMT-py option(s): {', '.join(bad)}")
    run_dir = Path(config["save_model"]).parent
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=True))
    parser = _train_parser()
    opt, _ = parser.parse_known_args(["-config", str(config_path)])
    from onmt.bin.train import train as onmt_train

    flag = {"stopped": False}
    start = time.monotonic()
    deadline = start + max_seconds if max_seconds is not None else None
    with (
        _time_budget(deadline, flag),
        _train_loss(loss_hook),
        _log_to(run_dir / "train.log"),
        _onmt_loads(),
    ):
        onmt_train(opt)
    found = checkpoints(run_dir)
    if not found:
        raise BackendError(f"OpenNMT-py wrote no checkpoint to {run_dir}")
    last = found[-1]
    return TrainResult(
        checkpoint=last,
        step=int(_CKPT.search(last.name).group(1)),
        seconds=time.monotonic() - start,
        stopped_by_budget=flag["stopped"],
    )


def count_parameters(path: Path) -> int:
    """Trainable parameters of a saved model (encoder, decoder, generator), counting shared
    embeddings once and leaving out the positional-encoding buffers. Sparse files (from
    ``reaction-nmt compress``) count every weight of their architecture, zeros included."""
    from reaction_nmt.modelfile import densify, is_sparse

    ckpt = load_checkpoint(path)
    ckpt = densify(ckpt) if is_sparse(ckpt) else ckpt
    shared = bool(getattr(ckpt["opt"], "share_embeddings", False))
    total = 0
    for key, t in ckpt["model"].items():
        if key.endswith(".pe.pe") or (shared and key.startswith("decoder.embeddings.")):
            continue
        total += t.numel()
    return total + sum(t.numel() for t in (ckpt["generator"] or {}).values())


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Element-wise mean of the weights of several checkpoints of one run (Vaswani et al.)."""
    if not paths:
        raise BackendError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    avg: dict = {"vocab": first["vocab"], "opt": first["opt"], "optim": None}
    for part in ("model", "generator"):
        keys = set(first[part])
        for p, c in zip(paths[1:], ckpts[1:], strict=True):
            if set(c[part]) != keys:
                raise BackendError(f"{p} has different {part} weights than {paths[0]}")
        avg[part] = {
            k: torch.stack([c[part][k].float() for c in ckpts]).mean(0).to(v.dtype)
            for k, v in first[part].items()
        }
    from chemprune.common.atomic import atomic_save
    from reaction_nmt.integrity import stamp

    return atomic_save(stamp(avg), out)


@contextlib.contextmanager
def _quiet_inference(verbose: bool = False) -> Iterator[None]:
    """OpenNMT-py's INFO lines (checkpoint loading, prediction scores) stay out of the output
    while a translator loads and translates, unless ``verbose`` or ``CHEMPRUNE_DEBUG`` is set;
    warnings and errors still show."""
    if verbose or os.environ.get("CHEMPRUNE_DEBUG"):
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.INFO))
    try:
        yield
    finally:
        logging.disable(previous)


class Translator:
    """Beam search with n-best output over a list of tokenised sources; ``verbose`` shows
    OpenNMT-py's INFO log lines (hidden otherwise)."""

    def __init__(
        self,
        model: Path | list[Path],
        *,
        beam_size: int = 5,
        n_best: int = 5,
        batch_size: int = 64,
        max_length: int = 300,
        verbose: bool = False,
    ) -> None:
        models = [Path(m) for m in (model if isinstance(model, list) else [model])]
        for m in models:
            load_checkpoint(m)  # clear error before OpenNMT-py touches the file
        if n_best > beam_size:
            raise BackendError(f"n_best ({n_best}) cannot exceed beam_size ({beam_size})")
        _setup()
        from onmt.bin.translate import _get_parser
        from onmt.inference_engine import InferenceEnginePY
        from onmt.utils.parse import ArgumentParser

        args = ["-model", *map(str, models), "-src", os.devnull, "-output", os.devnull]
        args += ["-beam_size", str(beam_size), "-n_best", str(n_best)]
        args += ["-batch_size", str(batch_size), "-batch_type", "sents"]
        args += ["-max_length", str(max_length), "-log_file", ""]
        opt = _get_parser().parse_args(args)
        ArgumentParser.validate_translate_opts(opt)
        ArgumentParser._get_all_transform_translate(opt)
        ArgumentParser._validate_transforms_opts(opt)
        ArgumentParser.validate_translate_opts_dynamic(opt)
        self.n_best = n_best
        self.verbose = verbose
        level = logging.getLogger().level
        from reaction_nmt.modelfile import onmt_hooks  # shrunk heads, sparse files

        with onmt_hooks(), _quiet_inference(verbose):
            self._engine = InferenceEnginePY(opt)
        logging.getLogger().setLevel(max(level, logging.WARNING))

    def translate(self, sources: list[str]) -> list[list[tuple[str, float]]]:
        """For each tokenised source, ``n_best`` (tokenised prediction, log-probability)."""
        if not sources:
            return []
        with _quiet_inference(self.verbose):
            scores, preds = self._engine.infer_list(list(sources))
        return [
            [(p, float(s)) for p, s in zip(ps, ss, strict=True)]
            for ps, ss in zip(preds, scores, strict=True)
        ]
