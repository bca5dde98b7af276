"""The error every compression step raises for bad inputs (exit code 2 on the command line)."""

from __future__ import annotations

__all__ = ["CompressError"]


class CompressError(ValueError):
    """A grouping spec, a checkpoint or an option cannot be used for compression."""
