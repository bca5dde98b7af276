"""run_train_job called from Python: the run flow of one training process without the CLI."""

from __future__ import annotations

import json

import pytest

from chemprune.pipeline.train_job import TrainJob, TrainJobError, run_train_job
from chemprune.pipeline.train_state import TrainSettings

TINY = dict(
    hidden_channels=16,
    filter_channels=16,
    num_interactions=2,
    num_gaussians=16,
    batch_size=16,
    filter_grid=0,
)


def test_run_train_job_writes_the_run_folder_and_returns_the_summary(qm9_dir, tmp_path):
    out = tmp_path / "run"
    job = TrainJob(out=out, data_dir=qm9_dir, subset=40, progress=False)  # 32 train: 2 steps
    lines: list[str] = []
    summary = run_train_job(job, TrainSettings(target="gap", epochs=1, **TINY), log=lines.append)
    assert summary is not None and summary["epochs_done"] == 1
    assert summary["best"] == str(out / "best.pt")
    assert {"last.pt", "best.pt", "history.jsonl"} <= {p.name for p in out.iterdir()}
    (row,) = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert row["epoch"] == 1
    assert lines[0].startswith("chemprune train: gap, 32/4/4 train/val/test molecules from ")
    assert lines[0].endswith(f", run folder {out}")


def test_run_train_job_names_fields_as_the_caller_says_them(qm9_dir, tmp_path):
    job = TrainJob(out=tmp_path / "run", data_dir=qm9_dir, subset=40, arch=tmp_path / "a.json")
    with pytest.raises(TrainJobError, match="^arch sets the architecture: drop hidden_channels$"):
        run_train_job(job, TrainSettings(hidden_channels=16), log=lambda m: None)
    with pytest.raises(ValueError, match=r"^--arch .*a\.json: not a readable JSON file"):
        run_train_job(job, TrainSettings(), log=lambda m: None, name=lambda f: f"--{f}")
    assert not (tmp_path / "run").exists()
