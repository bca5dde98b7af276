"""What a training run records and checks: target and split provenance, the resume checks,
and the SIGINT/SIGTERM guard that lets a run stop between steps with its state saved."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chemprune.common.atomic import CheckpointError
from chemprune.common.runfolder import RunLock
from chemprune.engines.distributed.context import DistContext, WorldSizeError
from chemprune.molecules.checkpoint import load_checkpoint
from chemprune.molecules.data.splits import Split
from chemprune.molecules.data.targets import Target

__all__ = [
    "TrainSettings",
    "target_dict",
    "split_dict",
    "SignalGuard",
    "resume_state",
    "run_lock",
    "check_new_run",
    "LOCK_HELD_ENV",
]

# Set by ``chemprune train --nproc N`` for its torchrun workers: the launcher holds the lock of
# this (resolved) run folder for them, across restarts.
LOCK_HELD_ENV = "CHEMPRUNE_RUN_LOCK_HELD"
RUN_FILES = ("last.pt", "best.pt", "history.jsonl")


@dataclass
class TrainSettings:
    """Everything that defines a run (saved in ``last.pt`` and checked on resume)."""

    target: str = "gap"
    hidden_channels: int = 128
    filter_channels: int = 128
    num_interactions: int = 6
    num_gaussians: int = 50
    cutoff: float = 5.0
    epochs: int = 100
    batch_size: int = 32
    lr: float = 5e-4
    optimizer: str = "adam"  # "adam" or "sgd" (with momentum, e.g. to compare gradient codecs)
    momentum: float = 0.9  # SGD only
    lr_schedule: str = "plateau"  # or "cosine" (see chemprune.pipeline.optim)
    warmup_steps: int = 0  # cosine only: linear warm-up steps
    lr_factor: float = 0.5  # plateau only
    lr_patience: int = 5  # plateau only
    min_lr: float = 1e-6
    max_grad_norm: float = 0.0  # clip the total gradient norm to this (0: no clipping)
    seed: int = 0
    eval_batch_size: int = 256
    comm_hook: str = (
        "allreduce"  # gradient exchange between processes (see chemprune.engines.distributed)
    )
    terngrad_min_size: int = 1  # TernGrad: parameters with fewer values go in float32
    terngrad_fp32: str = ""  # TernGrad: comma-separated globs of parameters sent in float32
    smoothout: float = 0.0  # SmoothOut noise amplitude (0: off)
    smoothout_adaptive: bool = False  # amplitude relative to each filter's norm
    smoothout_chunk: int = 0  # SmoothOut: one draw per this many molecules (0: per rank and step)
    smoothout_schedule: str = "constant"  # SmoothOut amplitude over the run (or anneal, tanh)
    # an architecture found by `chemprune search` (SchNet config; replaces the widths above)
    architecture: dict[str, Any] | None = None
    teacher: str = ""  # distil from this trained checkpoint ("" for none)
    # start from this trained checkpoint's weights and normalization ("" for a fresh model); its
    # architecture goes in `architecture` and its split is the run's (see train.init_run)
    init: str = ""
    distill: str = "none"  # none, output or features (with a teacher)
    distill_output_weight: float = 1.0
    distill_feature_weight: float = 1.0
    teacher_blocks: tuple[int, ...] | None = None  # the teacher block each student block matches
    # train on a grid: filters interpolated from this many knots per step (0: exact per pair);
    # the saved model is the exact one (see chemprune.molecules.models.tabulated). 256 by default: on the
    # 128/6 gap model it ran ~3x the steps/s at the exact run's validation MAE over 3 seeds
    # (benchmarks/grid_training.py)
    filter_grid: int = 256

    # Settings that may change when resuming (a longer budget, more epochs).
    resumable_changes: tuple[str, ...] = field(default=("epochs",), repr=False)

    def check(self, name: Callable[[str], str] = lambda field: field) -> TrainSettings:
        """Raise ``ValueError`` on a combination that cannot run; returns ``self``. ``name`` says
        how a message calls a field (the command line passes its option names)."""
        if self.comm_hook != "terngrad" and (self.terngrad_min_size != 1 or self.terngrad_fp32):
            raise ValueError(
                f"{name('terngrad_min_size')}/{name('terngrad_fp32')} need {name('comm_hook')} "
                "terngrad"
            )
        if self.smoothout_schedule != "constant" and self.smoothout == 0:
            raise ValueError(f"{name('smoothout_schedule')} needs {name('smoothout')} > 0")
        if self.warmup_steps and self.lr_schedule != "cosine":
            raise ValueError(f"{name('warmup_steps')} needs {name('lr_schedule')} cosine")
        return self

    def model_kwargs(self) -> dict[str, Any]:
        if self.architecture is not None:  # the target decides the readout
            return {k: v for k, v in self.architecture.items() if k != "readout"}
        return {
            "hidden_channels": self.hidden_channels,
            "filter_channels": self.filter_channels,
            "num_interactions": self.num_interactions,
            "num_gaussians": self.num_gaussians,
            "cutoff": self.cutoff,
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("resumable_changes")
        return d


@contextlib.contextmanager
def run_lock(out: Path, ctx: DistContext, *, what: str) -> Iterator[RunLock | None]:
    """Hold ``out``'s lock on the main rank for the duration (nothing elsewhere, nor when this
    process's launcher holds it)."""
    if not ctx.is_main or os.environ.get(LOCK_HELD_ENV) == str(Path(out).resolve()):
        yield None
        return
    with RunLock(out, what=what) as lock:
        yield lock


def target_dict(t: Target) -> dict[str, Any]:
    return {"name": t.name, "unit": t.unit, "readout": t.readout, "description": t.description}


def split_dict(split: Split, source: str) -> dict[str, Any]:
    """A checkpoint's ``data`` section: seed, sizes and the validation and test ids of a seeded
    split (rebuilt and checked on load), or every part of an explicit one (``seed`` -1: a split
    made elsewhere, e.g. an imported model's, which no seed reproduces)."""
    if split.seed < 0:
        return {
            "source": source,
            "split": {
                "kind": "explicit",
                "sizes": list(split.sizes),
                **{
                    p: torch.as_tensor(split.part(p), dtype=torch.int32)
                    for p in ("train", "val", "test")
                },  # fmt: skip
            },
        }
    return {
        "source": source,
        "split": {
            "seed": split.seed,
            "sizes": list(split.sizes),
            "val": torch.as_tensor(split.val, dtype=torch.int32),
            "test": torch.as_tensor(split.test, dtype=torch.int32),
        },
    }


class SignalGuard:
    """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second signal: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def check_new_run(out: Path) -> None:
    """Raise if ``out`` already holds a run's files (a new run would overwrite or mix with
    them)."""
    found = [name for name in RUN_FILES if (Path(out) / name).exists()]
    if not found:
        return
    if "last.pt" in found:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(found)}); pass --resume to continue it or "
            "choose another --out"
        )
    raise FileExistsError(
        f"{out} already holds files of another run ({', '.join(found)}) and no last.pt to "
        "resume from; choose another --out"
    )


def resume_state(
    out: Path, settings: Any, split: Split, *, resume: bool, world_size: int
) -> dict[str, Any] | None:
    """The state to resume from (``None`` for a new run), checked against this run's settings."""
    out.mkdir(parents=True, exist_ok=True)
    last_path = out / "last.pt"
    if not resume:
        check_new_run(out)
        return None
    if not last_path.exists():
        raise FileNotFoundError(f"cannot resume: {last_path} does not exist")
    state = load_checkpoint(last_path)
    if "training" not in state:
        raise CheckpointError(f"{last_path} has no training state to resume from")
    defaults = type(settings)().to_dict()
    if "filter_grid" in defaults:  # runs saved before training on a grid existed were exact
        defaults["filter_grid"] = 0
    saved = {**defaults, **dict(state["training"]["settings"])}
    diff = {
        k: (saved.get(k), v)
        for k, v in settings.to_dict().items()
        if k not in settings.resumable_changes and saved.get(k) != v
    }
    if diff:
        raise ValueError(f"cannot resume {last_path} with different settings: {diff}")
    saved_val = state["data"]["split"]["val"].numpy()
    if not np.array_equal(saved_val, split.val):
        raise ValueError(f"cannot resume {last_path}: the data split differs from the saved one")
    saved_world = int(state["training"].get("world_size", 1))
    if saved_world != world_size:
        raise WorldSizeError(
            f"cannot resume {last_path}: it was written by a run with {saved_world} process(es), "
            f"this run has {world_size}; an exact resume needs the same number"
        )
    return state
