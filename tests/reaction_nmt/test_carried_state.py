"""The reaction run carried between sessions (benchmarks/uspto_robust.py): the state saved in
half precision without Adam moments resumes training at its step in a fresh run folder."""

from __future__ import annotations

import shutil

from benchmarks import uspto_robust
from reaction_nmt.backend import checkpoints, load_checkpoint
from reaction_nmt.cli import main
from tests.reaction_nmt.conftest import TINY_TRAIN


def test_saved_state_resumes_at_its_step(tiny_run, synthetic_data, tmp_path, monkeypatch):
    monkeypatch.setattr(uspto_robust, "STATE", tmp_path / "state.pt")
    work = tmp_path / "work"
    (work / "run_compact").mkdir(parents=True)
    last = checkpoints(tiny_run)[-1]  # step 10, with Adam moments
    shutil.copy(last, work / "run_compact" / last.name)
    assert uspto_robust._has_moments(last)

    state = uspto_robust.save_state(work)
    saved = load_checkpoint(state)  # stamped: its checksum verifies
    assert all(v.dtype.is_floating_point and v.element_size() == 2 for v in saved["model"].values())
    assert "optimizer" not in saved["optim"] and uspto_robust._state_step(saved) == 10

    run = tmp_path / "fresh"
    uspto_robust.seed(run, state)
    seeded = checkpoints(run)[-1]
    assert seeded.name == "model_step_10.pt" and not uspto_robust._has_moments(seeded)
    original, restored = load_checkpoint(last)["model"], load_checkpoint(seeded)["model"]
    for k, v in original.items():  # half precision: equal to ~1e-3 relative
        assert restored[k].dtype == v.dtype
        assert (restored[k] - v).abs().max() <= 2e-3 * max(1.0, v.abs().max().item())

    shutil.copy(tiny_run / "vocab.txt", run / "vocab.txt")  # the same data: the same vocabulary
    extra = [*TINY_TRAIN[2:], "-train_steps", "15", "-reset_optim", "states"]
    argv = ["train", "--data", str(synthetic_data), "--out", str(run), "--preset", "tiny"]
    assert main([*argv, "--resume", "--threads", "1", *extra]) == 0
    steps = sorted(uspto_robust._step(c) for c in checkpoints(run))
    assert steps[-1] == 15 and 5 not in steps  # continued at step 10, not restarted at 1
