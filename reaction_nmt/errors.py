"""The error of the reaction side's backend (exit code 2 on the command line)."""

from __future__ import annotations

__all__ = ["BackendError"]


class BackendError(RuntimeError):
    """Training or translation cannot run (bad checkpoint, bad option, missing files)."""
