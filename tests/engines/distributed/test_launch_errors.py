"""Clear errors before or at launch: bad rendezvous settings, process counts, world sizes."""

from __future__ import annotations

import socket
import sys

import pytest
import torch

from chemprune.cli import main
from chemprune.common.atomic import atomic_save
from chemprune.engines.distributed.context import WorldSizeError
from chemprune.engines.distributed.launch import LaunchSpec
from chemprune.molecules.checkpoint import load_checkpoint
from chemprune.molecules.data.splits import make_split, subset_sizes
from chemprune.pipeline.train import TrainSettings, train
from tests.engines.distributed.conftest import start_group, stop_group


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--nproc", "2", "--rdzv-endpoint", "localhost:notaport"], "the port must be a number"),
        (["--nproc", "2", "--rdzv-endpoint", "localhost:70000"], "the port must be a number"),
        (["--nproc", "2", "--rdzv-endpoint", "localhost"], "not of the form HOST:PORT"),
        (["--nproc", "2", "--rdzv-endpoint", "no-such-host.invalid:29400"], "cannot resolve"),
        (["--nnodes", "2", "--nproc", "2"], "--nnodes 2 needs --rdzv-endpoint"),
        (["--nproc", "0"], "argument --nproc: must be an integer >= 1"),
        (
            ["--nproc", "2", "--max-restarts", "-1"],
            "argument --max-restarts: must be an integer >= 0",
        ),
        (["--nproc", "4", "--batch-size", "2"], "--batch-size 2 is smaller than the 4 processes"),
        (["--smoothout", "-0.1"], "argument --smoothout: must be a finite number >= 0"),
        (
            ["--smoothout", "0.1", "--smoothout-chunk", "-4"],
            "argument --smoothout-chunk: must be an integer >= 0",
        ),
        (["--smoothout-schedule", "anneal"], "--smoothout-schedule needs --smoothout > 0"),
        (
            ["--warmup-steps", "-1", "--lr-schedule", "cosine"],
            "argument --warmup-steps: must be an integer >= 0",
        ),
        (["--warmup-steps", "100"], "--warmup-steps needs --lr-schedule cosine"),
        (["--nproc", "2", "--terngrad-fp32", "lin2.*"], "need --comm-hook terngrad"),
        (
            ["--comm-hook", "terngrad", "--terngrad-min-size", "0"],
            "argument --terngrad-min-size: must",
        ),
    ],
)
def test_bad_launch_settings_exit_2_with_a_message(tmp_path, capsys, extra, message):
    # a missing --data-dir: a check that let the command through could not start a long run
    try:
        code = main(["train", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path), *extra])
    except SystemExit as exit_:  # refused by the option parser
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started


def test_unknown_comm_hook_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path), "--comm-hook", "int8"])
    assert exc.value.code == 2 and "invalid choice: 'int8'" in capsys.readouterr().err


def test_torchrun_command_forms():
    one = LaunchSpec(nproc=2, max_restarts=3).command(["chemprune", "train"])
    assert "--standalone" in one and one[one.index("--max-restarts") + 1] == "3"
    multi = LaunchSpec(nproc=4, nnodes=2, endpoint="localhost:29400", rdzv_id="job7")
    cmd = multi.command(["chemprune", "train"])
    assert "--standalone" not in cmd and cmd[cmd.index("--rdzv-endpoint") + 1] == "localhost:29400"
    assert cmd[cmd.index("--rdzv-id") + 1] == "job7" and cmd[cmd.index("--nnodes") + 1] == "2"
    assert multi.world_size == 8 and cmd[-3:] == ["-m", "chemprune", "train"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_machines_started_with_different_nproc_are_refused(qm9_dir, tmp_path):
    """The multi-machine form on one host: two launchers meet at one c10d endpoint, one with
    --nproc 2 and one with --nproc 1; torchrun makes 3 processes and every one refuses."""
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = [
        start_group(
            [sys.executable, "-m", "chemprune", "train", "--data-dir", str(qm9_dir)]
            + ["--out", str(tmp_path / "run"), "--nnodes", "2", "--nproc", str(n)]
            + ["--rdzv-endpoint", endpoint, "--rdzv-id", "mismatch", "--no-progress"]
        )
        for n in (2, 1)
    ]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            stop_group(p)
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode != 0
        assert "chemprune: error: distributed training failed" in err
    errs = outs[0][1] + outs[1][1]
    assert errs.count("torchrun started 3 processes in all, but --nproc x --nnodes asks for 4") == 2
    assert errs.count("torchrun started 3 processes in all, but --nproc x --nnodes asks for 2") == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def test_resume_with_another_number_of_processes_is_refused(qm9_small, tmp_path):
    split = make_split(len(qm9_small), subset_sizes(240, len(qm9_small)), 0)
    s = TrainSettings(
        epochs=1, hidden_channels=8, filter_channels=8, num_interactions=1, num_gaussians=8
    )
    train(qm9_small, split, tmp_path, settings=s, progress=False, log=lambda m: None)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["training"]["world_size"] == 1
    state["training"]["world_size"] = 2  # as written by a 2-process run
    atomic_save(state, tmp_path / "last.pt")
    with pytest.raises(WorldSizeError, match="written by a run with 2 process.*this run has 1"):
        train(qm9_small, split, tmp_path, settings=s, resume=True, progress=False)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["training"]["world_size"] == 2
