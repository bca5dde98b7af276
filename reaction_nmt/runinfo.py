"""The run description ``reaction_nmt.json`` that ``reaction-nmt train`` and ``distill`` write
beside a run's checkpoints (preset, data, the data's ``mode``, ...), read back with one-line
errors naming the file. Importing this module does not import torch."""

from __future__ import annotations

import json
from pathlib import Path

from reaction_nmt.errors import BackendError

__all__ = ["RUN_INFO", "read_run_info"]

RUN_INFO = "reaction_nmt.json"
_MODES = ("mixed", "separated")  # reaction_nmt.prepare.MODES
_STRINGS = ("preset", "data", "mode", "backend")


def read_run_info(path: Path) -> dict | None:
    """The run description at ``path`` (``None`` when there is none), checked: a JSON object
    whose ``preset``, ``data``, ``mode`` and ``backend`` are strings where present, ``mode``
    one of ``mixed``, ``separated``.

    Raises:
        BackendError: ``run description <path> is not valid JSON (line L, column C: ...)``, is
            not UTF-8, holds no JSON object, or has a field of the wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BackendError(f"run description {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise BackendError(f"run description {path} cannot be read: {err.strerror}") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as err:
        raise BackendError(
            f"run description {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg})"
        ) from None
    except RecursionError:
        raise BackendError(
            f"run description {path} is not valid JSON (nested too deeply)"
        ) from None
    if not isinstance(info, dict):
        raise BackendError(
            f"run description {path} holds a JSON {type(info).__name__}, not an object"
        )
    for key in _STRINGS:
        if key in info and info[key] is not None and not isinstance(info[key], str):
            raise BackendError(f"run description {path}: {key!r} is not a string")
    if info.get("mode") not in (None, *_MODES):
        mode = repr(info["mode"])
        shown = mode if len(mode) <= 40 else mode[:37] + "..."
        raise BackendError(
            f"run description {path}: mode {shown} is not one of {', '.join(_MODES)}"
        )
    return info
