"""Progress bars on a terminal only: a log file or a pipe gets the one-line-per-epoch messages
instead of carriage-return redraws."""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["on_terminal", "progress_bar"]


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal (``CHEMPRUNE_PROGRESS=1`` forces bars)."""
    if os.environ.get("CHEMPRUNE_PROGRESS") == "1":
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(*, total: int, **kwargs: Any):
    """A ``tqdm`` bar on stderr when it is a terminal, else ``None``."""
    if not on_terminal():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, **kwargs)
