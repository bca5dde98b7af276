"""Run folders of ``reaction-nmt train`` and ``distill``: a new run is refused where another
run's files are, and a resume is checked before anything in the folder is rewritten. The lock
itself is :class:`chemprune.common.runfolder.RunLock`."""

from __future__ import annotations

from pathlib import Path

from reaction_nmt.backend import BackendError, checkpoints, load_checkpoint
from reaction_nmt.runinfo import RUN_INFO, read_run_info

__all__ = ["RUN_INFO", "run_files", "check_new_run", "check_resume"]

_NAMED = ("config.yaml", RUN_INFO, "vocab.txt", "train.log")


def run_files(out: Path) -> list[str]:
    """Names of the run files in ``out`` (checkpoints, config, vocabulary, log, run info)."""
    out = Path(out)
    if not out.is_dir():
        return []
    return [n for n in _NAMED if (out / n).exists()] + [p.name for p in checkpoints(out)]


def check_new_run(out: Path, *, resumable: bool = True) -> None:
    """Raise unless ``out`` is new or holds no run files (training would overwrite them)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BackendError(f"--out {out} is a file; give a run folder")
    found = run_files(out)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        how = "pass --resume to continue it or " if resumable else ""
        raise BackendError(f"--out {out} already holds a run ({shown}); {how}choose another --out")


def check_resume(out: Path, *, preset: str, data: Path) -> Path:
    """The checkpoint to resume from, after checking it loads and that the run was made with
    the same preset and data; nothing is written."""
    out = Path(out)
    found = checkpoints(out)
    if not found:
        raise BackendError(f"--resume: {out} has no checkpoint to resume from")
    load_checkpoint(found[-1])  # refuses a truncated or foreign file before anything changes
    info = read_run_info(out / RUN_INFO)
    if info is not None:
        if info.get("preset") not in (None, preset):
            raise BackendError(
                f"--resume: {out} was trained with --preset {info['preset']}, not {preset}"
            )
        if info.get("data") not in (None, str(Path(data).resolve())):
            raise BackendError(f"--resume: {out} was trained on --data {info['data']}, not {data}")
    return found[-1]
