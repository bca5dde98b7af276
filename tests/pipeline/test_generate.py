"""The GAN pipeline on the 240-molecule fixture: data, exact resume, sampling, compression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chemprune.engines.gan.checkpoint import load_generator
from chemprune.pipeline.generate import (
    GANSettings,
    compress_gan,
    evaluate_samples,
    load_graphs,
    sample_smiles,
    train_gan,
)

SETTINGS = GANSettings(engine="mgo_gan", generators=2, classifier_weight=1.0, z_dim=8,
                       hidden=(16, 24, 32), batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def graphs(qm9_dir):
    return load_graphs(qm9_dir, seed=0)


def test_graph_data_split(graphs):
    assert graphs.spec["molecules"] + sum(graphs.spec["skipped"].values()) == 240
    assert len(graphs.train) + len(graphs.test) == graphs.spec["molecules"]
    assert not set(graphs.train) & set(graphs.test)
    assert len(graphs.test) == round(0.1 * graphs.spec["molecules"])


def test_resumed_training_continues_exactly(graphs, tmp_path):
    straight = train_gan(graphs, tmp_path / "a", tmp_path / "a.pt", settings=SETTINGS, steps=12,
                         progress=False)  # fmt: skip
    train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=SETTINGS, steps=5,
              progress=False)  # fmt: skip
    with pytest.raises(FileExistsError, match="--resume"):
        train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=SETTINGS, steps=12)
    other = GANSettings(**{**SETTINGS.__dict__, "lr": 1e-4})
    with pytest.raises(ValueError, match="other settings"):
        train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=other, steps=12, resume=True)
    resumed = train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=SETTINGS, steps=12,
                        resume=True, progress=False)  # fmt: skip
    assert straight["steps"] == resumed["steps"] == 12
    a, da, _ = load_generator(tmp_path / "a.pt")
    b, db, _ = load_generator(tmp_path / "b.pt")
    for p, q in zip([*a.state_dict().values(), *da.state_dict().values()],
                    [*b.state_dict().values(), *db.state_dict().values()], strict=True):  # fmt: skip
        assert torch.equal(p, q)


def test_sample_and_compress(graphs, tmp_path):
    train_gan(graphs, tmp_path / "r", tmp_path / "g.pt", settings=SETTINGS, steps=10,
              progress=False)  # fmt: skip
    gen, _, _ = load_generator(tmp_path / "g.pt")
    samples = sample_smiles(gen, 50, seed=1)
    assert samples == sample_smiles(gen, 50, seed=1) and len(samples) == 50
    m = evaluate_samples(samples, graphs, fcd_reference=None)
    assert 0 <= m["validity"] <= 1 and "fcd" not in m and "coverage" not in m
    pairs = sample_smiles(gen, 50, seed=1, with_generator=True)
    cov = evaluate_samples(samples, graphs, fcd_reference=None, generators=[k for _, k in pairs],
                           num_generators=2)["coverage"]  # fmt: skip
    assert [r["samples"] for r in cov["generators"]] == [25, 25]
    assert cov["union"] == len({s for s in samples if s})
    r = compress_gan(tmp_path / "g.pt", tmp_path / "c.pt", target_macs=0.4, steps=4,
                     progress=False)  # fmt: skip
    small, _, ckpt = load_generator(tmp_path / "c.pt")
    assert r["macs_fraction"] <= 0.4 and small.macs() == r["macs_after"]
    assert ckpt["compressed_from"]["method"] == "content" and r["finetune_steps"] == 4


def test_diversity_options_are_checked_recorded_and_resumed(graphs, tmp_path):
    with pytest.raises(ValueError, match="batch size 16 is not divisible by the pack 3"):
        GANSettings(batch_size=16, pack=3)
    with pytest.raises(ValueError, match="batch_features must be >= 0"):
        GANSettings(batch_features=-1)
    with pytest.raises(ValueError, match="mode_seeking must be"):
        GANSettings(mode_seeking=float("nan"))
    div = GANSettings(**{**SETTINGS.__dict__, "classifier_weight": 0.0, "batch_features": 4,
                         "pack": 2, "mode_seeking": 1.0})  # fmt: skip
    train_gan(graphs, tmp_path / "d", tmp_path / "d.pt", settings=div, steps=3, progress=False)
    gen, critic, ckpt = load_generator(tmp_path / "d.pt")
    assert critic.config()["batch_features"] == 4 and critic.config()["pack"] == 2
    assert ckpt["engine_options"]["mode_seeking"] == 1.0 and ckpt["settings"]["pack"] == 2
    r = train_gan(graphs, tmp_path / "d", tmp_path / "d.pt", settings=div, steps=6, resume=True,
                  progress=False)  # fmt: skip
    assert r["steps"] == 6
    # a run saved before the options existed resumes with their defaults
    train_gan(graphs, tmp_path / "o", tmp_path / "o.pt", settings=SETTINGS, steps=2, progress=False)
    last = torch.load(tmp_path / "o" / "last.pt", weights_only=True)
    for key in ("batch_features", "pack", "mode_seeking"):
        del last["training"]["settings"][key]
    torch.save(last, tmp_path / "o" / "last.pt")
    r = train_gan(graphs, tmp_path / "o", tmp_path / "o.pt", settings=SETTINGS, steps=4,
                  resume=True, progress=False)  # fmt: skip
    assert r["steps"] == 4


def test_sample_smiles_with_generator_indices():
    """Sample i comes from generator i mod K: with K = 3 and 10 samples, 4, 3 and 3; the
    SMILES are those of the plain call."""
    from chemprune.engines.gan.models import GraphGenerator

    torch.manual_seed(0)
    gen = GraphGenerator(num_generators=3, z_dim=8, hidden=(16, 24, 32))
    pairs = sample_smiles(gen, 10, seed=2, with_generator=True)
    assert [k for _, k in pairs] == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    assert [s for s, _ in pairs] == sample_smiles(gen, 10, seed=2)
    assert all(isinstance(k, int) for _, k in pairs)


def test_the_validity_options_are_checked_recorded_and_resumed_exactly(graphs, tmp_path):
    """Shared noise, the valence penalties and the reward network (its weights and optimizer
    in last.pt): 3 + 3 resumed steps equal 6 straight ones."""
    for bad, message in [({"rl_weight": 1.5}, r"rl_weight must be in \[0, 1\]"),
                         ({"rl_warmup": -1}, "rl_warmup must be >= 0"),
                         ({"valence_weight": float("inf")}, "valence_weight must be"),
                         ({"reward": "qed"}, "reward must be one of validity, validity_qed")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            GANSettings(**bad)
    opts = GANSettings(**{**SETTINGS.__dict__, "engine": "mgan", "classifier_weight": 0.01,
                          "same_noise": True, "valence_weight": 1.0, "rl_weight": 0.5,
                          "rl_warmup": 2})  # fmt: skip
    train_gan(graphs, tmp_path / "a", tmp_path / "a.pt", settings=opts, steps=6, progress=False)
    train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=opts, steps=3, progress=False)
    train_gan(graphs, tmp_path / "b", tmp_path / "b.pt", settings=opts, steps=6, resume=True,
              progress=False)  # fmt: skip
    a, da, ckpt = load_generator(tmp_path / "a.pt")
    b, db, _ = load_generator(tmp_path / "b.pt")
    for p, q in zip([*a.state_dict().values(), *da.state_dict().values()],
                    [*b.state_dict().values(), *db.state_dict().values()], strict=True):  # fmt: skip
        assert torch.equal(p, q)
    assert ckpt["engine_options"]["same_noise"] is True
    assert ckpt["engine_options"]["rl_weight"] == 0.5 and ckpt["settings"]["reward"] == "validity"
    ra = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["training"]["engine_state"]
    rb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["training"]["engine_state"]
    for p, q in zip(ra["reward"]["net"].values(), rb["reward"]["net"].values(), strict=True):
        assert torch.equal(p, q)
    # a file trained with the options compresses (the engine gets its chemistry again)
    r = compress_gan(tmp_path / "a.pt", tmp_path / "c.pt", target_macs=0.5, steps=2,
                     progress=False)  # fmt: skip
    assert r["finetune_steps"] == 2
    # a run saved before the options existed resumes with their defaults
    train_gan(graphs, tmp_path / "o", tmp_path / "o.pt", settings=SETTINGS, steps=2, progress=False)
    last = torch.load(tmp_path / "o" / "last.pt", weights_only=True)
    for key in ("same_noise", "valence_weight", "rl_weight", "rl_warmup", "reward"):
        del last["training"]["settings"][key]
    torch.save(last, tmp_path / "o" / "last.pt")
    r = train_gan(graphs, tmp_path / "o", tmp_path / "o.pt", settings=SETTINGS, steps=4,
                  resume=True, progress=False)  # fmt: skip
    assert r["steps"] == 4


def test_the_rdkit_reward_and_the_valence_tables():
    from chemprune.engines.gan import one_hot_graphs
    from chemprune.engines.gan.penalties import validity_penalties
    from chemprune.molecules.chem.molgraph import encode
    from chemprune.pipeline.gan_reward import reward_function, valence_tables

    good = [encode(s) for s in ("CCO", "c1ccoc1")]
    atoms = torch.tensor(np.stack([g[0] for g in good] + [good[0][0]]))
    bonds = torch.tensor(np.stack([g[1] for g in good] + [good[0][1]]))
    bonds[2, 0, 2] = bonds[2, 2, 0] = 3  # a triple bond C#O on top: O over its valence
    graphs = one_hot_graphs(atoms, bonds, 5, 4)
    assert reward_function("validity")(graphs).tolist() == [1.0, 1.0, 0.0]
    qed = reward_function("validity_qed")(graphs)
    assert 0 < qed[0] < 1 and 0 < qed[1] < 1 and qed[2] == 0
    max_valence, bond_order = valence_tables()
    assert max_valence.tolist() == [0, 4, 3, 2, 1] and bond_order.tolist() == [0, 1, 2, 3]
    pen = validity_penalties(*graphs, max_valence, bond_order)
    assert pen["valence"][:2].tolist() == [0, 0] and pen["valence"][2] > 0
    with pytest.raises(ValueError, match="reward must be one of"):
        reward_function("logp")
