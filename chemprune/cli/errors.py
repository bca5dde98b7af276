"""The ``chemprune`` command line's error type and exit codes (see :mod:`chemprune.cli`)."""

from __future__ import annotations

from chemprune.common.failures import EXIT_INTERNAL, EXIT_USAGE

__all__ = [
    "CliError",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_INTERNAL",
]

EXIT_PARTIAL = 1
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error to report as ``chemprune: error: ...`` with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
