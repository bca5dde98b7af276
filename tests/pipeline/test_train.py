"""Training: learning happens, exact resume after a kill, time budget, NaN, bad resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from chemprune.molecules.checkpoint import load_checkpoint
from chemprune.molecules.data.splits import make_split, subset_sizes
from chemprune.pipeline.train import TrainingDiverged, TrainSettings, train
from tests.conftest import REPO

TINY = dict(
    hidden_channels=16,
    filter_channels=16,
    num_interactions=2,
    num_gaussians=16,
    batch_size=16,
    lr=3e-3,
)


def split_of(data, n=240, seed=0):
    return make_split(len(data), subset_sizes(n, len(data)), seed)


def test_training_learns_and_writes_checkpoints(qm9_small, tmp_path):
    split = split_of(qm9_small)
    s = TrainSettings(target="gap", epochs=12, **TINY)
    r = train(qm9_small, split, tmp_path / "run", settings=s, progress=False, log=lambda m: None)
    hist = [
        json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    ]
    assert len(hist) == 12 and r["epochs_done"] == 12
    assert hist[-1]["train_mae"] < 0.75 * hist[0]["train_mae"]
    y = qm9_small.target_values("gap")
    mean_mae = np.abs(y[split.val] - y[split.train].mean()).mean()
    assert r["best_val_mae"] < mean_mae  # better than predicting the mean
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["target"]["name"] == "gap" and best["config"]["filter_channels"] == [16, 16]
    assert torch.equal(
        best["data"]["split"]["test"], torch.as_tensor(split.test, dtype=torch.int32)
    )
    assert "training" in load_checkpoint(tmp_path / "run" / "last.pt")


def test_time_budget_stops_resumably(qm9_small, tmp_path):
    split = split_of(qm9_small)
    s = TrainSettings(target="U0", epochs=10_000, **TINY)
    t0 = time.perf_counter()
    r = train(
        qm9_small, split, tmp_path, settings=s, max_minutes=0.05, progress=False, log=lambda m: None
    )
    assert r["stopped"] == "time budget reached" and time.perf_counter() - t0 < 30
    state = load_checkpoint(tmp_path / "last.pt")["training"]
    r2 = train(
        qm9_small,
        split,
        tmp_path,
        settings=s,
        resume=True,
        max_minutes=0.02,
        progress=False,
        log=lambda m: None,
    )
    assert load_checkpoint(tmp_path / "last.pt")["training"]["global_step"] > state["global_step"]
    assert r2["epochs_done"] >= r["epochs_done"]


def test_nan_loss_is_reported_not_saved(qm9_small, tmp_path):
    data = qm9_small
    split = split_of(data)
    props = data.props.copy()
    col = data.columns.index("HOMO_LUMO_gap_au")
    props[split.train[:3], col] = np.nan
    bad = type(data)(**{**data.__dict__, "props": props})
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1"):
        train(
            bad,
            split,
            tmp_path,
            settings=TrainSettings(epochs=2, **TINY),
            progress=False,
            log=lambda m: None,
        )
    assert not (tmp_path / "best.pt").exists()


def test_momentum_sgd_learns_and_is_saved(qm9_small, tmp_path):
    split = split_of(qm9_small)
    s = TrainSettings(epochs=6, **{**TINY, "lr": 0.01}, optimizer="sgd", momentum=0.9)
    train(qm9_small, split, tmp_path / "run", settings=s, progress=False, log=lambda m: None)
    hist = [
        json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    ]
    assert hist[-1]["train_mae"] < 0.9 * hist[0]["train_mae"]
    training = load_checkpoint(tmp_path / "run" / "last.pt")["training"]
    assert training["settings"]["optimizer"] == "sgd"
    group = training["optimizer"]["param_groups"][0]
    assert group["momentum"] == 0.9 and "betas" not in group  # SGD's state, not Adam's
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'.*adam, sgd"):
        train(
            qm9_small,
            split,
            tmp_path / "bad",
            settings=TrainSettings(epochs=1, **TINY, optimizer="rmsprop"),
            progress=False,
            log=lambda m: None,
        )


def test_cosine_schedule_ends_at_min_lr_and_resumes_exactly(qm9_small, tmp_path):
    split = split_of(qm9_small)  # 192 training molecules: 12 steps per epoch
    s = TrainSettings(epochs=3, **TINY, lr_schedule="cosine", min_lr=1e-5)
    quiet = dict(progress=False, log=lambda m: None)
    train(qm9_small, split, tmp_path / "ref", settings=s, **quiet)
    hist = [
        json.loads(line) for line in (tmp_path / "ref" / "history.jsonl").read_text().splitlines()
    ]
    lrs = [row["lr"] for row in hist]
    assert lrs[0] < s.lr and lrs[-1] == pytest.approx(1e-5) and lrs == sorted(lrs, reverse=True)
    # stopped after its first step (mid-epoch), then resumed: the same weights as without a stop
    train(qm9_small, split, tmp_path / "cut", settings=s, max_minutes=1e-9, **quiet)
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")["training"]
    assert 0 < cut["global_step"] < 36
    train(qm9_small, split, tmp_path / "cut", settings=s, resume=True, **quiet)
    a = load_checkpoint(tmp_path / "ref" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert b["training"]["global_step"] == 36
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="different settings.*lr_schedule"):
        train(
            qm9_small,
            split,
            tmp_path / "ref",
            settings=TrainSettings(epochs=3, **TINY, min_lr=1e-5),
            resume=True,
            **quiet,
        )


def test_resume_refuses_other_settings_and_existing_runs(qm9_small, tmp_path):
    split = split_of(qm9_small)
    s = TrainSettings(epochs=1, **TINY)
    train(qm9_small, split, tmp_path, settings=s, progress=False, log=lambda m: None)
    with pytest.raises(FileExistsError, match="--resume"):
        train(qm9_small, split, tmp_path, settings=s, progress=False, log=lambda m: None)
    other = TrainSettings(epochs=1, **{**TINY, "lr": 1.0})
    with pytest.raises(ValueError, match="different settings.*lr"):
        train(
            qm9_small,
            split,
            tmp_path,
            settings=other,
            resume=True,
            progress=False,
            log=lambda m: None,
        )
    with pytest.raises(ValueError, match="split differs"):
        train(
            qm9_small,
            split_of(qm9_small, seed=5),
            tmp_path,
            settings=s,
            resume=True,
            progress=False,
            log=lambda m: None,
        )
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(qm9_small, split, tmp_path / "none", settings=s, resume=True, progress=False)


def _train_cmd(qm9_dir, out, *extra):
    return [
        sys.executable,
        "-m",
        "chemprune",
        "train",
        "--data-dir",
        str(qm9_dir),
        "--target",
        "gap",
        "--hidden",
        "16",
        "--filters",
        "16",
        "--interactions",
        "2",
        "--gaussians",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "25",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _final_state(out):
    return load_checkpoint(out / "last.pt")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_with_nothing_lost(qm9_dir, tmp_path, sig):
    env_kw = dict(cwd=REPO, capture_output=True, text=True, timeout=600)
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(qm9_dir, ref, "--checkpoint-every", "0"), check=True, **env_kw)

    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(qm9_dir, out, "--checkpoint-every", "5"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    killed = load_checkpoint(out / "last.pt")["training"]
    total_steps = 25 * int(np.ceil(192 / 8))
    assert killed["global_step"] < total_steps, "the run finished before it could be killed"
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "--resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL

    done = subprocess.run(_train_cmd(qm9_dir, out, "--checkpoint-every", "5", "--resume"), **env_kw)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    a, b = _final_state(ref), _final_state(out)
    assert a["training"]["global_step"] == b["training"]["global_step"] == total_steps
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-5, atol=1e-6)
    ha = [r["val_mae"] for r in a["training"]["history"]]
    hb = [r["val_mae"] for r in b["training"]["history"]]
    np.testing.assert_allclose(hb, ha, rtol=1e-5)
    rows = (out / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 26))


@pytest.mark.slow
def test_kill_nine_soak_ends_bit_exact(qm9_dir, tmp_path):
    """SIGKILL at random points, 20 times, resuming each time: the run ends bit-exact with one
    that was never interrupted (issue 22's soak)."""
    rng = np.random.default_rng(22)
    env_kw = dict(cwd=REPO, capture_output=True, text=True, timeout=900)
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(qm9_dir, ref, "--checkpoint-every", "3"), check=True, **env_kw)
    out = tmp_path / "run"
    kills, step_at_kill = 0, []
    while kills < 20:
        resume = ["--resume"] if (out / "last.pt").exists() else []
        proc = subprocess.Popen(
            _train_cmd(qm9_dir, out, "--checkpoint-every", "3", *resume),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        before = (out / "last.pt").stat().st_mtime_ns if resume else 0
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # wait for progress
            if (out / "last.pt").exists() and (out / "last.pt").stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0, 0.6)))  # then a random point
        if proc.poll() is not None:
            break  # finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        step_at_kill.append(load_checkpoint(out / "last.pt")["training"]["global_step"])
    assert kills == 20, f"the run finished after {kills} kills; make it longer"
    assert step_at_kill == sorted(step_at_kill) and len(set(step_at_kill)) > 10
    done = subprocess.run(_train_cmd(qm9_dir, out, "--checkpoint-every", "3", "--resume"), **env_kw)
    assert done.returncode == 0, done.stderr
    a, b = _final_state(ref), _final_state(out)
    assert a["training"]["global_step"] == b["training"]["global_step"]
    for k, v in a["state_dict"].items():
        assert torch.equal(b["state_dict"][k], v), k
    assert [r["val_mae"] for r in a["training"]["history"]] == [
        r["val_mae"] for r in b["training"]["history"]
    ]
    rows = (out / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 26))
