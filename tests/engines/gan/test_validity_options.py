"""MGAN's shared noise, the differentiable validity penalties and MolGAN's reward network in the
GAN engine (issue 33, item 2)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from chemprune.engines.gan import GAN_ENGINES, one_hot_graphs
from chemprune.engines.gan.base import draw_noise
from chemprune.engines.gan.penalties import validity_penalties
from chemprune.molecules.chem.molgraph import encode

from .conftest import real_batch, tiny_critic, tiny_generator

# QM9's chemistry, by hand: pad C N O F and none single double triple
MAX_VALENCE = torch.tensor([0.0, 4, 3, 2, 1])
BOND_ORDER = torch.tensor([0.0, 1, 2, 3])


def one_hot(atoms, bonds):
    a = torch.as_tensor(np.asarray(atoms))[None]
    b = torch.as_tensor(np.asarray(bonds))[None]
    return one_hot_graphs(a, b, 5, 4)


def penalties(atoms, bonds):
    return {k: float(v[0]) for k, v in validity_penalties(*one_hot(atoms, bonds),
                                                          MAX_VALENCE, BOND_ORDER).items()}  # fmt: skip


# ---------------------------------------------------------------------- same noise
def test_same_noise_gives_every_generator_the_same_vectors():
    g = tiny_generator(k=3)
    z, which = draw_noise(g, 8, torch.Generator().manual_seed(0), same_noise=True)
    assert which.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    for i in range(8):  # sample i uses vector i // K: the K samples of a group share it
        assert torch.equal(z[i], z[3 * (i // 3)])
    assert not torch.equal(z[0], z[3]) and not torch.equal(z[3], z[6])
    z_ind, _ = draw_noise(g, 8, torch.Generator().manual_seed(0))
    assert not torch.equal(z_ind[0], z_ind[1])  # the default: independent noise


def test_mgan_with_same_noise_trains_with_its_classifier():
    g, d = tiny_generator(k=3), tiny_critic(k=3)
    eng = GAN_ENGINES.get("mgan")(generator=g, critic=d, n_critic=1, same_noise=True,
                                  classifier_weight=0.01, seed=2)  # fmt: skip
    state = eng.rng.get_state()
    _, which, z, _ = eng.fake(9)
    eng.rng.set_state(state)
    assert torch.equal(z, draw_noise(g, 9, eng.rng, same_noise=True)[0])
    for k in range(3):  # one draw: generators 0, 1, 2 of group k all saw z of that group
        assert torch.equal(z[3 * k], z[3 * k + 1]) and torch.equal(z[3 * k], z[3 * k + 2])
    assert which.tolist() == [0, 1, 2] * 3
    stats = eng.train_step(real_batch(0, 9))
    assert math.isfinite(stats["classifier_ce"]) and math.isfinite(stats["g_classifier_ce"])
    assert stats["g_classifier_ce"] > 0


# ---------------------------------------------------------------------- validity penalties
def test_an_over_bonded_carbon_is_penalised_a_valid_molecule_is_not():
    atoms = [1, 1, 1, 1, 1, 1, 0, 0, 0]
    bonds = np.zeros((9, 9), dtype=np.int64)
    for j in range(1, 6):  # carbon 0 with five single bonds
        bonds[0, j] = bonds[j, 0] = 1
    p = penalties(atoms, bonds)
    assert p["valence"] == pytest.approx(1.0) and p["isolated"] == 0 and p["padding_bonds"] == 0
    for smiles in ("CCO", "C#N", "c1ccoc1", "OCC(F)F", "C"):  # methane: a lone atom is fine
        assert penalties(*encode(smiles)) == {"valence": 0, "isolated": 0, "padding_bonds": 0}


def test_isolated_atoms_and_bonds_on_padding_are_penalised():
    atoms, bonds = encode("CCO")
    atoms = atoms.copy()
    atoms[5] = 2  # a nitrogen with no bond
    p = penalties(atoms, bonds)
    assert p["isolated"] == pytest.approx(1.0) and p["valence"] == 0
    atoms, bonds = encode("CCO")
    bonds = bonds.copy()
    bonds[0, 7] = bonds[7, 0] = 1  # a bond to an empty slot
    p = penalties(atoms, bonds)
    assert p["padding_bonds"] == pytest.approx(1.0) and p["valence"] > 0
    with pytest.raises(ValueError, match="max_valence must be"):
        validity_penalties(*one_hot(atoms, bonds), MAX_VALENCE[:4], BOND_ORDER)


def test_the_valence_weight_adds_the_penalty_and_its_gradient_reaches_the_generator():
    def loss(weight):
        g, d = tiny_generator(), tiny_critic()
        eng = GAN_ENGINES.get("wgan_gp")(generator=g, critic=d, valence_weight=weight,
                                         max_valence=MAX_VALENCE, bond_order=BOND_ORDER, seed=3)  # fmt: skip
        return (*eng.generator_loss(8), g)

    l0, s0, _ = loss(0.0)
    l1, s1, g = loss(2.0)
    assert "penalty_valence" not in s0 and s1["g_adv"] == s0["g_adv"]
    total = s1["penalty_valence"] + s1["penalty_isolated"] + s1["penalty_padding_bonds"]
    assert total > 0
    assert float(l1.detach()) == pytest.approx(float(l0.detach()) + 2.0 * total, rel=1e-5)
    g.zero_grad()
    (l1 - l0.detach()).backward()
    assert all(p.grad is not None for p in g.first[0].parameters())
    assert float(g.edges.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="max_valence and bond_order"):
        GAN_ENGINES.get("wgan_gp")(generator=g, critic=tiny_critic(), valence_weight=1.0)
    with pytest.raises(ValueError, match=r"max_valence must be \[T\]"):
        GAN_ENGINES.get("wgan_gp")(generator=g, critic=tiny_critic(), valence_weight=1.0,
                                   max_valence=MAX_VALENCE[:4], bond_order=BOND_ORDER)  # fmt: skip


# ---------------------------------------------------------------------- reward network
def carbon_fraction(graphs):
    """A toy reward: the fraction of the slots that hold a carbon."""
    return graphs[0][..., 1].mean(1)


def rl_engine(weight=0.5, warmup=0, **kw):
    g, d = tiny_generator(), tiny_critic()
    return GAN_ENGINES.get("mgan")(generator=g, critic=d, reward_fn=carbon_fraction,
                                   rl_weight=weight, rl_warmup=warmup, seed=4, **kw)  # fmt: skip


def test_the_reward_network_learns_the_reward():
    eng = rl_engine()
    mse = [eng.critic_step(real_batch(i, 8))["reward_mse"] for i in range(40)]
    assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:5])
    assert eng.reward.net.classifier is None and eng.reward.net.pack == 1


def test_the_reward_term_starts_after_the_warm_up():
    plain, _ = rl_engine(0.0).generator_loss(8)
    eng = rl_engine(0.5, warmup=3)
    before, stats = eng.generator_loss(8)
    assert torch.equal(before, plain) and "g_reward" not in stats  # same noise, same loss
    eng = rl_engine(0.5, warmup=3)
    eng.step = 3
    after, stats = eng.generator_loss(8)
    assert 0 < stats["g_reward"] < 1
    expected = 0.5 * (stats["g_adv"] + stats["g_classifier_ce"]) - 0.5 * stats["g_reward"]
    assert float(after.detach()) == pytest.approx(expected, rel=1e-5)
    eng.generator.zero_grad()
    after.backward()
    assert float(eng.generator.nodes.weight.grad.abs().sum()) > 0
    eng.reward.optimizer.zero_grad(set_to_none=True)
    eng.generator_step(8)  # the generator's update leaves the reward network alone
    assert all(p.grad is None for p in eng.reward.net.parameters())
    with pytest.raises(ValueError, match="needs a reward_fn"):
        GAN_ENGINES.get("wgan_gp")(generator=tiny_generator(), critic=tiny_critic(), rl_weight=0.5)
    with pytest.raises(ValueError, match=r"rl_weight must be in \[0, 1\]"):
        rl_engine(1.5)


def test_the_reward_network_resumes_exactly():
    a = rl_engine(0.5, warmup=2, n_critic=1)
    for i in range(3):
        a.train_step(real_batch(i, 8))
    buf = io.BytesIO()
    torch.save({"g": a.generator.state_dict(), "d": a.critic.state_dict(),
                "e": a.state_dict()}, buf)  # fmt: skip
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = rl_engine(0.5, warmup=2, n_critic=1)
    b.generator.load_state_dict(saved["g"])
    b.critic.load_state_dict(saved["d"])
    b.load_state_dict(saved["e"])
    for i in range(3, 6):
        sa, sb = a.train_step(real_batch(i, 8)), b.train_step(real_batch(i, 8))
        assert sa == sb and "g_reward" in sa
    for p, q in zip(a.reward.net.parameters(), b.reward.net.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        assert torch.equal(p, q)
    plain = GAN_ENGINES.get("mgan")(generator=tiny_generator(), critic=tiny_critic())
    with pytest.raises(ValueError, match="reward network"):
        plain.load_state_dict(saved["e"])
