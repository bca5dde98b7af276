"""What every benchmark shares, once: resumable rows, the environment record, the result JSON
and the plot boilerplate (issue 32).

- :class:`RowStore`: a folder of finished rows, ``<key>.json`` each and, when the row has one,
  its model ``<key>.pt``; a row whose JSON exists is done (the model is written first, each
  file atomically, so a crash never leaves a row that looks done and is not). ``only_done``:
  the rows not saved are left out instead of computed (measure what is there, train nothing).
- :func:`environment` / :func:`finish`: package versions, machine, thread count,
  ``OMP_WAIT_POLICY`` and the load average at the start; :func:`finish` adds it at the end.
- :func:`header`, :func:`write_results`: the first keys of a result JSON (benchmark, timestamp,
  command, settings) and the atomic write of the whole record.
- :func:`pyplot`, :func:`save_figure`: matplotlib without a display, and the figure saved
  (tight layout, its folder made, 120 dpi, atomically) and closed.

Importing it loads no torch (chemprune's atomic writers are imported when a file is written),
so a script that starts torch in subprocesses under other OpenMP settings can use it too. The
scripts import it as a sibling (``from harness import RowStore``): ``python benchmarks/X.py``
has this folder on ``sys.path`` already, and ``benchmarks/__init__.py`` puts it there for
``python -m benchmarks.X`` and for the tests (``import benchmarks.harness``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

#: the packages :func:`environment` records by default (the QM9 benchmarks' stack)
PACKAGES = ("torch", "torch-pruning", "numpy", "chemprune", "qm9pack")


# ---------------------------------------------------------------------- rows
class RowStore:
    """The finished rows of a benchmark in ``folder``: ``<key>.json`` (the row) and
    ``<key>.pt`` (its model, when it has one). Paths are ``folder / name`` as given, never
    resolved, so a row that records its model's path records the same string as before.

    ``only_done``: :meth:`resume` leaves out the rows that are not saved (and logs them)
    instead of handing them back to be computed.
    """

    def __init__(
        self, folder: os.PathLike | str, *, only_done: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.only_done = only_done
        self.log = log

    def json_path(self, key: str) -> Path:
        # built by hand, not with_suffix: "attention_0.75" has no suffix to replace
        return self.folder / f"{key}.json"

    def model_path(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def done(self, key: str) -> bool:
        """Saved: its JSON exists (a half-written one is still a hidden temporary file)."""
        return self.json_path(key).is_file()

    def load(self, key: str) -> dict[str, Any]:
        return json.loads(self.json_path(key).read_text())

    def save_model(self, key: str, model_checkpoint: Any) -> Path:
        """``model_checkpoint`` (anything ``torch.save`` takes) to :meth:`model_path`, atomically;
        the row is not done until :meth:`save` writes its JSON."""
        from chemprune.common.atomic import atomic_save

        return atomic_save(model_checkpoint, self.model_path(key))

    def save(self, key: str, row: dict[str, Any], model_checkpoint: Any = None) -> None:
        """``row`` as JSON (indent 1, non-JSON values as ``str``), after ``model_checkpoint``
        when given (:meth:`save_model`); both atomic, the JSON last."""
        from chemprune.common.atomic import atomic_write_text

        if model_checkpoint is not None:
            self.save_model(key, model_checkpoint)
        atomic_write_text(self.json_path(key), json.dumps(row, indent=1, default=str) + "\n")

    def resume(self, keys: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """The resumable loop: each key with its saved row, or with ``None`` when it is still
        to be computed (then compute it and :meth:`save` it). Lazy: a key listed again after
        its row was saved is loaded. With ``only_done`` the keys not saved are left out."""
        for key in keys:
            if self.done(key):
                self._log(f"{key}: done before ({self.json_path(key)})")
                yield key, self.load(key)
            elif self.only_done:
                self._log(f"{key}: not run (--only-done)")
            else:
                yield key, None

    def _log(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)


def error_text(err: BaseException) -> str:
    """How a failed row records its exception (verbatim: the run goes on)."""
    return f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------- environment
def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def environment(threads: int | None, packages: Iterable[str] = PACKAGES) -> dict[str, Any]:
    """``{"versions": {python, *packages}, "machine": {platform, processor, cpu_count, threads,
    omp_wait_policy, loadavg_start}}`` (a package not installed: None)."""
    versions: dict[str, Any] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    host: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor()}
    host |= {"cpu_count": os.cpu_count(), "threads": threads}
    host |= {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    load = loadavg()
    if load is not None:
        host["loadavg_start"] = load
    return {"versions": versions, "machine": host}


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """:func:`environment`'s ``record`` with the load average at the end added."""
    record["machine"]["loadavg_end"] = loadavg()
    return record


# ---------------------------------------------------------------------- results
def timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def settings(args: Any) -> dict[str, Any]:
    """The parsed options, paths as strings."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def header(benchmark: str, args: Any, *, program: str | None = None) -> dict[str, Any]:
    """The first keys of a result: benchmark, timestamp, command (``program``, by default the
    interpreter's file name, then ``sys.argv``) and settings."""
    command = " ".join([program or Path(sys.executable).name, *sys.argv])
    return {"benchmark": benchmark, "timestamp": timestamp(), "command": command,
            "settings": settings(args)}  # fmt: skip


def write_results(path: os.PathLike | str, record: Any, *, indent: int = 1) -> Path:
    """``record`` as JSON (non-JSON values as ``str``, a final newline), written atomically."""
    from chemprune.common.atomic import atomic_write_text

    return atomic_write_text(path, json.dumps(record, indent=indent, default=str) + "\n")


# ---------------------------------------------------------------------- plots
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: os.PathLike | str, *, dpi: int = 120) -> None:
    """Tight layout, ``path``'s folder made, saved (through a temporary file in that folder,
    renamed over ``path``: never a half-written image), closed."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix names the format
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
