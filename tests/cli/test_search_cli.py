"""chemprune search on a tiny trained SchNet: the derived architecture file, errors."""

from __future__ import annotations

import json

import pytest

from chemprune.molecules.models.schnet import SchNet
from tests.conftest import run_cli


def search(trained, qm9_dir, out, *extra):
    return run_cli(
        "search", "--teacher", str(trained), "--data-dir", str(qm9_dir), "--out", str(out),
        "--threads", "1", "--no-progress", *extra,
    )  # fmt: skip


def test_search_writes_a_derivable_architecture(trained, qm9_dir, tmp_path):
    out = tmp_path / "arch.json"
    r = search(trained, qm9_dir, out, "--steps", "6", "--candidates", "cf8,cf16,linear8,atomwise,skip,none",
               "--target-macs", "0.5", "--filter-grid", "64")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "derived:" in r.stdout and "of the teacher's" in r.stdout
    rec = json.loads(out.read_text())
    assert rec["format"] == "chemprune-architecture" and rec["target"]["name"] == "gap"
    model = SchNet.from_config(rec["config"])  # an ordinary SchNet
    assert len(model.interactions) == len(rec["kept_blocks"]) >= 1
    blocks = rec["search"]["blocks"]
    assert len(blocks) == 2 and all(b["chosen"] != "none" for b in blocks)
    assert rec["search"]["steps"] == 6 and rec["search"]["engine"] == "darts_minus"
    assert rec["search"]["filter_grid"] == 64


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give --steps or --minutes (the search's budget)"),
        (["--minutes", "1"], "--engine darts_minus decays its auxiliary skip over --steps"),
        (["--steps", "2", "--warmup-steps", "2"], "--warmup-steps 2 leaves none of the 2 --steps"),
        (["--steps", "2", "--candidates", "cf8,conv3"], "unknown candidate operation"),
        (["--steps", "2", "--target-macs", "1.5"], "fraction of the teacher's MACs"),
    ],
)
def test_bad_options_are_one_line_errors(trained, qm9_dir, tmp_path, extra, message):
    r = search(trained, qm9_dir, tmp_path / "a.json", *extra)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "a.json").exists()


@pytest.fixture(scope="module")
def arch(trained, qm9_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("arch") / "arch.json"
    r = search(
        trained, qm9_dir, out, "--steps", "4", "--candidates", "cf8,linear8,atomwise,skip,none"
    )
    assert r.returncode == 0, r.stderr
    return out


def train_arch(qm9_dir, out, *extra):
    return run_cli(
        "train", "--data-dir", str(qm9_dir), "--target", "gap", "--epochs", "1", "--out", str(out),
        "--batch-size", "16", "--threads", "1", "--no-progress", *extra,
    )  # fmt: skip


def test_train_the_derived_architecture_distilled(arch, trained, qm9_dir, tmp_path):
    from chemprune.molecules.checkpoint import load_model

    r = train_arch(qm9_dir, tmp_path / "run", "--arch", str(arch), "--teacher", str(trained))
    assert r.returncode == 0, r.stderr
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    rec = json.loads(arch.read_text())
    assert model.config()["filter_channels"] == rec["config"]["filter_channels"]
    assert model.block_kinds == rec["config"].get("block_kinds", model.block_kinds)
    r = run_cli(
        "evaluate", "--model", str(tmp_path / "run" / "best.pt"), "--data-dir", str(qm9_dir)
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hidden", "32"], "--arch sets the architecture: drop --hidden"),
        (["--seed", "3"], "trained on another split"),
        (["--target", "homo"], "was searched for 'gap'"),
    ],
)
def test_train_arch_errors(arch, trained, qm9_dir, tmp_path, extra, message):
    args = ["--arch", str(arch), "--teacher", str(trained), *extra]  # a later --target wins
    r = train_arch(qm9_dir, tmp_path / "run", *args)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_arch_file_must_be_a_search_result(qm9_dir, tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text('{"hidden_channels": 4}')
    r = train_arch(qm9_dir, tmp_path / "run", "--arch", str(bad))
    assert r.returncode != 0 and "not an architecture written by 'chemprune search'" in r.stderr
