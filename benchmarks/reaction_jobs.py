"""Helpers shared by the reaction benchmarks (imported by the scripts beside it).

* :class:`Job`: ``reaction-nmt`` in its own process (so several run side by side), its stderr
  (OpenNMT-py's log) appended to a file;
* :func:`validation_view`: a prepared data folder with its validation files cut short.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

from chemprune.common.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]

__all__ = ["Job", "head_lines", "validation_view"]


class Job:
    """``reaction-nmt ARGS`` started now; ``wait()`` prints its output and stops the benchmark
    (with the log's tail) if it failed."""

    def __init__(self, *args: str, threads: int, log: Path):
        self.cmd = [sys.executable, "-m", "reaction_nmt.cli", *args]
        self.log = log
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
        print("$ reaction-nmt", " ".join(args), flush=True)
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                self.cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err
            )

    def wait(self) -> None:
        out, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            tail = self.log.read_text(errors="replace")[-4000:]
            cmd = " ".join(self.cmd)
            raise SystemExit(f"{tail}\nfailed ({self.proc.returncode}): {cmd}; log: {self.log}")
        if out.decode().strip():
            print(out.decode().strip(), flush=True)


def head_lines(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` lines of a (gzip) text file, written as plain text (atomically)."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fh:
        lines = [line for _, line in zip(range(n), fh, strict=False)]
    return atomic_write_text(dst, "".join(lines))


def validation_view(data: Path, n_valid: int | None) -> Path:
    """``data`` with its validation files cut to the first ``n_valid`` reactions, for the
    learning curves during training (teacher-forced validation of all 5,000 USPTO-50k reactions
    would eat a large part of a one-hour CPU budget). The test split is untouched; the other
    files are links. ``data`` itself when ``n_valid`` is 0 or None."""
    if not n_valid:
        return data
    view = data.with_name(data.name + f"_valid{n_valid}")
    view.mkdir(exist_ok=True)
    for f in sorted(data.iterdir()):
        link = view / f.name
        if f.name in ("src-valid.txt", "tgt-valid.txt"):
            head_lines(f, link, n_valid)
        elif not link.exists():
            link.symlink_to(f.resolve())
    return view
