"""``chemprune generate`` end to end on the fixture, and its bad inputs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

TINY = ["--generators", "2", "--hidden", "16,24,32", "--batch-size", "16", "--threads", "1",
        "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def generator(qm9_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "g.pt"
    r = run_cli("generate", "train", "--data-dir", str(qm9_dir), "--out", str(out), "--steps",
                "10", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "10 critic steps" in r.stdout
    return out


def test_sample_writes_smiles_and_metrics(generator, tmp_path):
    smi = tmp_path / "mols.smi"
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "40", "--smiles-out",
                str(smi), "--no-fcd", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["samples"] == 40 and 0 <= m["validity"] <= 1
    assert len(smi.read_text().splitlines()) == 40


def test_compress(generator, tmp_path):
    out = tmp_path / "small.pt"
    r = run_cli("generate", "compress", "--model", str(generator), "--out", str(out),
                "--target-macs", "0.25", "--steps", "3", "--method", "magnitude",
                "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "magnitude pruning" in r.stdout and out.exists()


def test_bad_inputs(generator, trained, tmp_path):
    r = run_cli("generate", "sample", "--model", str(trained), "-n", "10")
    assert (
        r.returncode == 2
        and "SchNet checkpoint" in r.stderr
        and "not a chemprune graph" in r.stderr
    )
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "0")
    assert r.returncode == 2 and "-n: must be an integer >= 1" in r.stderr
    r = run_cli("generate", "compress", "--model", str(generator), "--out", str(generator),
                "--target-macs", "0.25")  # fmt: skip
    assert r.returncode == 2 and "same file" in r.stderr
    r = run_cli("generate", "compress", "--model", str(generator), "--out", str(tmp_path / "x"),
                "--target-macs", "1.5")  # fmt: skip
    assert r.returncode == 2 and "--target-macs: must be a finite number > 0 and <= 1" in r.stderr
    r = run_cli("generate", "train", "--out", str(tmp_path / "y.pt"))
    assert r.returncode == 2 and "--steps or --minutes" in r.stderr
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(generator.read_bytes()[:1000])
    r = run_cli("generate", "sample", "--model", str(bad), "-n", "5")
    assert r.returncode == 2 and "truncated or corrupted" in r.stderr


def test_train_with_the_diversity_options(qm9_dir, tmp_path):
    out = tmp_path / "d.pt"
    r = run_cli("generate", "train", "--data-dir", str(qm9_dir), "--out", str(out), "--steps",
                "4", "--engine", "wgan_gp", "--batch-features", "4", "--pack", "4",
                "--mode-seeking", "1", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("generate", "sample", "--model", str(out), "-n", "8", "--no-fcd", "--json")
    assert r.returncode == 0, r.stderr
    for flags, message in [
        (["--pack", "3"], "--pack 3 does not divide --batch-size 16"),
        (["--pack", "0"], "--pack: must be an integer >= 1"),
        (["--batch-features", "-1"], "--batch-features: must be an integer >= 0"),
        (["--mode-seeking", "-0.5"], "--mode-seeking: must be a finite number >= 0"),
    ]:
        r = run_cli("generate", "train", "--data-dir", str(qm9_dir), "--out",
                    str(tmp_path / "x.pt"), "--steps", "2", *TINY, *flags)  # fmt: skip
        assert r.returncode == 2 and message in r.stderr, r.stderr
        errors = [line for line in r.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in r.stderr  # (argparse adds its usage)
    assert not (tmp_path / "x.pt").exists()
