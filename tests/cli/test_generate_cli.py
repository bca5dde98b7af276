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
    """--smiles-out, the deprecated alias of --out FILE --all: one line per sample."""
    smi = tmp_path / "mols.smi"
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "40", "--smiles-out",
                str(smi), "--no-fcd", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "deprecated" in r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["samples"] == 40 and 0 <= m["validity"] <= 1
    assert len(smi.read_text().splitlines()) == 40
    cov = m["coverage"]  # K = 2: 20 samples each
    assert [g["samples"] for g in cov["generators"]] == [20, 20]
    assert cov["union"] == len({s for s in smi.read_text().splitlines() if s})


@pytest.fixture(scope="module")
def mixed_generator(generator, tmp_path_factory):
    """The tiny generator (valid 0 of 200 after 10 steps) with its output biases shaped so that
    its samples are a mix of valid and invalid graphs: slots 2-8 padding and no bond outside
    the pair (0, 1), so each graph is one or two atoms, bonded or not, as the network says."""
    import torch

    from chemprune.common.atomic import atomic_save
    from chemprune.engines.gan.checkpoint import generator_checkpoint, load_generator

    gen, critic, ckpt = load_generator(generator)
    n, t, y = gen.max_atoms, gen.atom_types, gen.bond_types
    with torch.no_grad():
        gen.nodes.bias.view(n, t)[2:, 0] += 100
        keep = torch.zeros(n, n, dtype=torch.bool)
        keep[0, 1] = keep[1, 0] = True
        gen.edges.bias.view(n, n, y)[~keep, 0] += 100
    out = tmp_path_factory.mktemp("mixed") / "m.pt"
    atomic_save(generator_checkpoint(gen, critic, engine=ckpt["engine"],
                                     engine_options=ckpt.get("engine_options"), data=ckpt["data"],
                                     extra={"settings": ckpt.get("settings")}), out)  # fmt: skip
    return out


def test_sample_out_files(mixed_generator, tmp_path):
    from rdkit import Chem

    generator = mixed_generator
    out = tmp_path / "valid.smi"
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "20", "--out", str(out),
                "--no-fcd", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout.strip().splitlines()[-1])
    lines = out.read_text().splitlines()
    assert 0 < len(lines) == round(20 * m["validity"]) < 20  # the valid samples only
    for s in lines:
        assert s and Chem.MolToSmiles(Chem.MolFromSmiles(s)) == s  # canonical

    every = tmp_path / "all.smi"
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "20", "--out", str(every),
                "--all", "--with-generator", "--no-fcd")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "only it" in r.stdout  # the coverage table (K = 2)
    rows = [line.split("\t") for line in every.read_text().splitlines()]
    assert len(rows) == 20 and all(len(row) == 2 for row in rows)
    assert [int(k) for _, k in rows] == [i % 2 for i in range(20)]
    assert [s for s, _ in rows if s] == lines  # the same samples, invalid ones as ''

    r = run_cli("generate", "sample", "--model", str(generator), "-n", "5", "--out",
                str(generator))  # fmt: skip
    assert r.returncode == 2 and "same file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = run_cli("generate", "sample", "--model", str(generator), "-n", "5", "--all")
    assert r.returncode == 2 and "give --out" in r.stderr


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


def test_train_with_the_validity_options(qm9_dir, tmp_path):
    """--same-noise, --valence-weight, --rl-weight/--rl-warmup/--reward reach the engine and
    the generator file; bad values get one-line errors."""
    import torch

    out = tmp_path / "v.pt"
    r = run_cli("generate", "train", "--data-dir", str(qm9_dir), "--out", str(out), "--steps",
                "4", "--engine", "mgan", "--classifier-weight", "0.01", "--same-noise",
                "--valence-weight", "1", "--rl-weight", "0.5", "--rl-warmup", "2", "--reward",
                "validity_qed", "--json", *TINY)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(out, weights_only=True)
    opts = ckpt["engine_options"]
    assert opts["same_noise"] is True and opts["valence_weight"] == 1.0
    assert opts["rl_weight"] == 0.5 and opts["rl_warmup"] == 2
    assert ckpt["settings"]["reward"] == "validity_qed"
    for flags, message in [
        (["--rl-weight", "1.5"], "--rl-weight: must be a finite number >= 0 and <= 1"),
        (["--rl-warmup", "-1"], "--rl-warmup: must be an integer >= 0"),
        (["--valence-weight", "nan"], "--valence-weight: must be a finite number >= 0"),
        (["--reward", "qed"], "--reward: invalid choice"),
    ]:
        r = run_cli("generate", "train", "--data-dir", str(qm9_dir), "--out",
                    str(tmp_path / "x.pt"), "--steps", "2", *TINY, *flags)  # fmt: skip
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.pt").exists()
