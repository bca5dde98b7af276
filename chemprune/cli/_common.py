"""Helpers shared by the CLI commands: thread and device options, the QM9 data and split a
command runs on."""

from __future__ import annotations

from pathlib import Path

from chemprune.cli.errors import CliError
from chemprune.molecules.data.qm9 import QM9Data, load_dataset
from chemprune.molecules.data.splits import (
    Split,
    load_or_create_split,
    standard_sizes,
    subset_sizes,
)

__all__ = ["load_dataset_and_split", "resolve_device", "set_threads"]


def set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        if threads < 1:
            raise CliError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def resolve_device(name: str):
    """``torch.device(name)``, checked: a clear error for a malformed or unavailable device."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CliError(f"--device {name!r} is not a device name ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: CUDA is not available on this machine (use cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise CliError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CliError(f"--device {name}: MPS is not available on this machine (use cpu)")
    return device


def load_dataset_and_split(
    data_dir: Path | None, subset: int | None, seed: int
) -> tuple[QM9Data, Split, str]:
    """QM9 (:func:`chemprune.molecules.data.qm9.load_dataset`) and its split: the ``subset`` sizes when
    given, else the standard sizes for full QM9, else all of a small dataset."""
    data, source, folder = load_dataset(data_dir)
    if subset is not None:
        sizes = subset_sizes(subset, len(data))
    elif len(data) > 120_000:
        sizes = standard_sizes(len(data))
    else:
        sizes = subset_sizes(len(data), len(data))
    split, _ = load_or_create_split(folder, len(data), sizes, seed)
    return data, split, source
