"""Helpers shared by the CLI commands: thread and device options."""

from __future__ import annotations

from chemprune.cli.errors import CliError

__all__ = ["resolve_device", "set_threads"]


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
