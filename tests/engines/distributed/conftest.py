"""Helpers for the multi-process tests: subprocess environment, torchrun, process trees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

__all__ = [
    "REPO",
    "children",
    "run_group",
    "start_group",
    "stop_group",
    "torchrun_cmd",
    "worker_env",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread in this process (OpenMP spin-waits make 2-thread tiny steps crawl)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def worker_env() -> dict[str, str]:
    """One thread per process, passive OpenMP waits, the repository importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_group(cmd: list[str], **kw) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own (torchrun, its agent and its workers)."""
    kw.setdefault("env", worker_env())
    kw.setdefault("cwd", REPO)
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw
    )


def stop_group(proc: subprocess.Popen) -> None:
    """Kill whatever is left of ``proc``'s group, so no worker outlives its test."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_group(cmd: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` for commands that spawn workers: on a timeout the whole group goes."""
    proc = start_group(cmd, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def torchrun_cmd(nproc: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        *args,
    ]


def children(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}
