"""chemprune train under torchrun: the workers' command line is built from the option values
(worker_argv) and parses back to the same run."""

from __future__ import annotations

import argparse

import pytest

from chemprune.cli import build_parser, train
from chemprune.pipeline.train_state import TrainSettings

#: a value other than the default for every option the workers get back
EVERY_OPTION = [
    "--target", "homo", "--out", "runs/x", "--init", "a.pt", "--subset", "500",
    "--data-dir", "d", "--seed", "3", "--hidden", "16", "--filters", "24",
    "--interactions", "2", "--gaussians", "20", "--cutoff", "4.5", "--arch", "arch.json",
    "--teacher", "t.pt", "--distill", "output", "--distill-output-weight", "0.25",
    "--distill-feature-weight", "0.1", "--epochs", "7", "--batch-size", "16", "--lr", "0.001",
    "--optimizer", "sgd", "--momentum", "0.8", "--lr-schedule", "cosine", "--filter-grid", "0",
    "--max-grad-norm", "2.5", "--warmup-steps", "9", "--lr-factor", "0.3", "--lr-patience", "2",
    "--min-lr", "1e-07", "--max-minutes", "1.5", "--checkpoint-every", "11", "--threads", "2",
    "--device", "cpu:0", "--comm-hook", "terngrad", "--terngrad-min-size", "4",
    "--terngrad-fp32", "lin2.*", "--smoothout", "0.01", "--smoothout-chunk", "8",
    "--smoothout-schedule", "tanh", "--resume", "--no-progress", "--json",
    "--smoothout-adaptive",
]  # fmt: skip
LAUNCHER = ["--nproc", "2", "--nnodes", "1", "--rdzv-endpoint", "h:1", "--rdzv-id", "j",
            "--max-restarts", "1"]  # fmt: skip


def _parse(argv: list[str]) -> dict:
    parsed = vars(build_parser().parse_args(argv))
    return {k: v for k, v in parsed.items() if k not in train.LAUNCH_ONLY}


def test_the_workers_command_line_parses_back_to_the_same_run():
    for argv in (["train", *EVERY_OPTION, *LAUNCHER], ["train", "--out", "r", "--nproc", "2"]):
        launcher = build_parser().parse_args(argv)
        worker = train.worker_argv(launcher)
        assert not {"--nproc", "--nnodes", "--rdzv-endpoint"} & set(worker)
        assert _parse(worker) == _parse(argv)


def test_every_option_of_train_is_given_to_the_workers_or_kept_by_the_launcher():
    build_parser()
    assert train._PARSER is not None
    dests = {a.dest for a in train._PARSER._actions if a.option_strings} - {"help"}
    given = set(train._WORKER_VALUES) | set(train._WORKER_SWITCHES)
    assert dests == given | set(train.LAUNCH_ONLY)
    assert not given & set(train.LAUNCH_ONLY)
    switches = {a.dest for a in train._PARSER._actions if isinstance(a, argparse._StoreTrueAction)}
    assert switches == set(train._WORKER_SWITCHES)
    assert {a.dest for a in train._PARSER._actions if a.option_strings} >= given
    parsed = build_parser().parse_args(["train", *EVERY_OPTION])
    defaults = build_parser().parse_args(["train", "--out", "runs/x"])
    same = [k for k in given if getattr(parsed, k) == getattr(defaults, k) and k != "out"]
    assert same == []  # EVERY_OPTION sets every one of them


def test_the_workers_build_the_same_settings():
    launcher = build_parser().parse_args(["train", *EVERY_OPTION, *LAUNCHER])
    worker = build_parser().parse_args(train.worker_argv(launcher))
    assert train.settings_from_args(worker) == train.settings_from_args(launcher)


def test_train_settings_check_names_fields_as_the_caller_says_them():
    with pytest.raises(ValueError, match="^warmup_steps needs lr_schedule cosine$"):
        TrainSettings(warmup_steps=5).check()
    with pytest.raises(ValueError, match="^--smoothout-schedule needs --smoothout > 0$"):
        TrainSettings(smoothout_schedule="tanh").check(train._option)
    with pytest.raises(ValueError, match="need comm_hook terngrad"):
        TrainSettings(terngrad_fp32="lin2.*").check()
    assert TrainSettings(lr_schedule="cosine", warmup_steps=5).check().warmup_steps == 5
