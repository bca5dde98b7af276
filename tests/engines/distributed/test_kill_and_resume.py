"""``chemprune train --nproc 2 --max-restarts 1``: one worker is SIGKILLed mid-run, torchrun
restarts both, they resume from last.pt, and the result equals an uninterrupted 2-process run."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch

from chemprune.molecules.checkpoint import load_checkpoint
from tests.engines.distributed.conftest import (
    children,
    environ_of,
    run_group,
    start_group,
    stop_group,
)

EPOCHS, BATCH, TRAIN = 12, 8, 192


def _cmd(qm9_dir, out, *extra):
    return [
        sys.executable,
        "-m",
        "chemprune",
        "train",
        "--data-dir",
        str(qm9_dir),
        "--hidden",
        "16",
        "--filters",
        "16",
        "--interactions",
        "2",
        "--gaussians",
        "16",
        "--batch-size",
        str(BATCH),
        "--epochs",
        str(EPOCHS),
        "--threads",
        "1",
        "--no-progress",
        "--nproc",
        "2",
        "--out",
        str(out),
        *extra,
    ]


def _worker(launcher: int, rank: str) -> int | None:
    for pid in children(launcher):
        env = environ_of(pid)
        if env.get("RANK") == rank and env.get("TORCHELASTIC_RESTART_COUNT") == "0":
            return pid
    return None


@pytest.fixture(scope="module")
def runs(qm9_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    ref = run_group(_cmd(qm9_dir, tmp / "ref", "--checkpoint-every", "0"))
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp / "run"
    cmd = _cmd(qm9_dir, out, "--checkpoint-every", "5", "--max-restarts", "1")
    proc = start_group(cmd)
    try:
        deadline, victim = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            if (out / "last.pt").exists():
                victim = _worker(proc.pid, "1")
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                    break
            time.sleep(0.01)
        killed_at = load_checkpoint(out / "last.pt")["training"]["global_step"]
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        stop_group(proc)
    return {"ref": ref, "tmp": tmp, "qm9_dir": qm9_dir, "victim": victim, "killed_at": killed_at,
            "proc": proc, "stdout": stdout, "stderr": stderr}  # fmt: skip


def test_killed_worker_is_restarted_and_nothing_is_lost(runs):
    total = EPOCHS * (TRAIN // BATCH)
    assert runs["victim"] is not None, "no rank-1 worker was found to kill"
    assert runs["killed_at"] < total, "the run finished before it could be killed"
    assert runs["proc"].returncode == 0, runs["stderr"][-3000:]
    assert "resuming" in runs["stdout"]  # the restarted rank 0 continued from last.pt
    a = load_checkpoint(runs["tmp"] / "ref" / "last.pt")
    b = load_checkpoint(runs["tmp"] / "run" / "last.pt")
    assert a["training"]["global_step"] == b["training"]["global_step"] == total
    assert a["training"]["world_size"] == b["training"]["world_size"] == 2
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        [r["val_mae"] for r in b["training"]["history"]],
        [r["val_mae"] for r in a["training"]["history"]],
        rtol=1e-6,
    )
    rows = (runs["tmp"] / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, EPOCHS + 1))


def test_only_rank_0_logs_and_writes(runs):
    out = runs["ref"].stdout
    assert out.count("epoch    1 ") == 1 and out.count("done (epochs done)") == 1
    assert out.count("chemprune train: gap,") == 1
    files = sorted(p.name for p in (runs["tmp"] / "ref").iterdir())
    assert files == [".lock", "best.pt", "history.jsonl", "last.pt"]
    assert (runs["tmp"] / "ref" / ".lock").read_text() == ""  # released by the launcher


def test_resume_on_one_process_is_refused_with_a_clear_error(runs):
    cmd = _cmd(runs["qm9_dir"], runs["tmp"] / "ref", "--resume")
    at = cmd.index("--nproc")
    del cmd[at : at + 2]
    done = run_group(cmd)
    assert done.returncode == 2
    assert "written by a run with 2 process(es), this run has 1" in done.stderr
