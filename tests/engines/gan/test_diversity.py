"""Diversity inside each generator: MolGAN's batch features, PacGAN's packs, MSGAN's term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from chemprune.common.atomic import atomic_save
from chemprune.engines.gan import GAN_ENGINES, GraphCritic, draw_noise, gradient_penalty
from chemprune.engines.gan.checkpoint import generator_checkpoint, load_generator
from chemprune.engines.gan.diversity import mode_seeking_term, pack_rows
from tests.engines.gan.conftest import real_batch, tiny_generator


def critic(seed: int = 1, **kw) -> GraphCritic:
    torch.manual_seed(seed)
    return GraphCritic(conv=(16, 8), aggregate=16, mlp=(16, 8), **kw)


def copies(i: int, n: int):
    x, a = real_batch(i, 1)
    return x.expand(n, -1, -1).clone(), a.expand(n, -1, -1, -1).clone()


@pytest.mark.parametrize("size", [0, 4])
def test_batch_features_make_a_score_depend_on_the_rest_of_the_batch(size):
    d = critic(batch_features=size).eval()
    same = copies(0, 8)  # graph 0 and seven copies of it
    diverse = real_batch(0, 8)  # graph 0 and seven other molecules
    assert torch.equal(same[0][0], diverse[0][0]) and torch.equal(same[1][0], diverse[1][0])
    s_same, s_diverse = d(*same)[0][0], d(*diverse)[0][0]
    if size:
        assert not torch.allclose(s_same, s_diverse)
    else:
        torch.testing.assert_close(s_same, s_diverse)


def test_batch_features_gradient_penalty_computes():
    d = critic(batch_features=4)
    real = real_batch(0, 8)
    fake = (torch.rand_like(real[0]).softmax(-1), torch.rand_like(real[1]).softmax(-1))
    gp = gradient_penalty(d, real, fake, torch.rand(8))
    gp.backward()
    assert math.isfinite(float(gp.detach())) and float(gp.detach()) > 0
    assert d.batch_features.per_sample.weight.grad.abs().sum() > 0


def test_packs_are_judged_together():
    d = critic(pack=2).eval()
    x0, a0 = real_batch(0, 1)
    x1, a1 = real_batch(3, 1)
    twins = d(torch.cat([x0, x0]), torch.cat([a0, a0]))[0]
    pair = d(torch.cat([x0, x1]), torch.cat([a0, a1]))[0]
    assert twins.shape == pair.shape == (1,)
    assert not torch.allclose(twins, pair)
    assert d(*real_batch(0, 8))[0].shape == (4,)
    with pytest.raises(ValueError, match="batch of 7 graphs .* pack of 2"):
        d(*real_batch(0, 7))
    with pytest.raises(ValueError, match="pack 1, got pack 2"):
        critic(pack=2, num_generators=3)
    assert pack_rows(torch.arange(6.0).view(3, 2), 3).tolist() == [[0, 1, 2, 3, 4, 5]]


class PackedLinearCritic(nn.Module):
    """D(pack) = sum over its m graphs of <w, graph>: the gradient per pack is (w, ..., w)."""

    def __init__(self, m: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.m = m
        self.wx = nn.Parameter(torch.randn(9, 5) * 0.1)
        self.wa = nn.Parameter(torch.randn(9, 9, 4) * 0.1)

    def forward(self, x, a):
        per = (x * self.wx).sum((1, 2)) + (a * self.wa).sum((1, 2, 3))
        return per.view(-1, self.m).sum(1), None, None


def test_gradient_penalty_takes_one_norm_per_pack():
    d = PackedLinearCritic(2)
    real = real_batch(0, 4)
    fake = (torch.rand_like(real[0]), torch.rand_like(real[1]))
    gp = gradient_penalty(d, real, fake, torch.rand(2).repeat_interleave(2))
    norm = math.sqrt(2) * torch.sqrt(d.wx.pow(2).sum() + d.wa.pow(2).sum())
    torch.testing.assert_close(gp, (norm - 1) ** 2)


def test_the_engine_refuses_a_batch_the_pack_does_not_divide():
    eng = GAN_ENGINES.get("wgan_gp")(generator=tiny_generator(), critic=critic(pack=3))
    with pytest.raises(ValueError, match="batch size 8 is not divisible by the critic's pack 3"):
        eng.train_step(real_batch(0, 8))


def test_mode_seeking_term_is_large_for_a_generator_that_ignores_its_noise():
    g = tiny_generator().eval()
    rng = torch.Generator().manual_seed(0)
    z1, which = draw_noise(g, 12, rng)
    z2 = torch.randn(z1.shape, generator=rng)

    def term():
        with torch.no_grad():
            out1 = [t.softmax(-1) for t in g(z1, which)]
            out2 = [t.softmax(-1) for t in g(z2, which)]
        return float(mode_seeking_term(z1, z2, out1, out2))

    random = term()
    with torch.no_grad():
        for layer in g.first:
            layer.weight.zero_()
    assert term() > 100 * random


def test_zero_mode_seeking_leaves_the_generator_loss_as_it_was():
    def loss(weight):
        g, d = tiny_generator(), critic()
        eng = GAN_ENGINES.get("wgan_gp")(generator=g, critic=d, mode_seeking=weight, seed=5)
        return eng.generator_loss(8), g, d

    (l0, s0), g, d = loss(0.0)
    rng = torch.Generator().manual_seed(5)  # the old loss, by hand: -D(softmax G(z))
    z, which = draw_noise(g, 8, rng)
    nodes, edges = g(z, which)
    old = -d(nodes.softmax(-1), edges.softmax(-1))[0].mean()
    assert torch.equal(l0, old) and "mode_seeking" not in s0
    (l1, s1), _, _ = loss(2.0)
    assert s1["g_adv"] == s0["g_adv"] and s1["mode_seeking"] > 0
    assert float(l1.detach()) == pytest.approx(s0["g_adv"] + 2.0 * s1["mode_seeking"], rel=1e-6)
    with pytest.raises(ValueError, match="mode_seeking"):
        GAN_ENGINES.get("wgan_gp")(generator=g, critic=d, mode_seeking=-1.0)


OPTIONS = [
    ({"batch_features": 4}, {}),
    ({"pack": 2}, {}),
    ({}, {"mode_seeking": 1.0}),
    ({"batch_features": 4, "pack": 4}, {"mode_seeking": 1.0}),
]


@pytest.mark.parametrize(("critic_kw", "engine_kw"), OPTIONS)
def test_train_step_with_each_option(critic_kw, engine_kw):
    g, d = tiny_generator(), critic(**critic_kw)
    eng = GAN_ENGINES.get("mgo_gan")(generator=g, critic=d, n_critic=1, seed=0, **engine_kw)
    g0 = [p.detach().clone() for p in g.parameters()]
    d0 = {n: p.detach().clone() for n, p in d.named_parameters() if n != "score.bias"}
    stats = eng.train_step(real_batch(0, 8))
    assert all(math.isfinite(v) for v in stats.values()) and stats["gp"] > 0
    assert ("mode_seeking" in stats) == bool(engine_kw)
    assert any(not torch.equal(a, b) for a, b in zip(g0, g.parameters(), strict=True))
    # every critic weight trains, the batch-feature layers included (the score's bias cancels
    # out of the Wasserstein estimate)
    after = dict(d.named_parameters())
    assert all(not torch.equal(p, after[n]) for n, p in d0.items())


def test_options_round_trip_through_a_generator_file(tmp_path):
    g, d = tiny_generator(), critic(batch_features=4, pack=2, minibatch_std=True)
    eng = GAN_ENGINES.get("wgan_gp")(generator=g, critic=d, n_critic=1, mode_seeking=1.0)
    eng.train_step(real_batch(0, 8))
    path = tmp_path / "g.pt"
    atomic_save(generator_checkpoint(g, d, engine="wgan_gp", engine_options={"mode_seeking": 1.0}),
                path)  # fmt: skip
    g2, d2, ckpt = load_generator(path)
    assert d2.config() == d.config() and ckpt["engine_options"]["mode_seeking"] == 1.0
    d.eval(), d2.eval(), g.eval()
    x, a = real_batch(1, 8)
    torch.testing.assert_close(d2(x, a)[0], d(x, a)[0], rtol=0, atol=0)
    z, which = draw_noise(g, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(g2(z, which), g(z, which), rtol=0, atol=0)
    assert "batch_features=4" in repr(d2) and "pack=2" in repr(d2)
    old = d.config()
    del old["batch_features"], old["pack"]  # a file from before the options
    assert GraphCritic.from_config(old).config()["pack"] == 1
    with pytest.raises(ValueError, match="batch_features must be >= 0"):
        critic(batch_features=-1)
    with pytest.raises(ValueError, match="pack must be >= 1"):
        critic(pack=0)


def test_content_scores_use_whole_packs():
    from chemprune.engines.gan.compress import content_scores

    scores = content_scores(tiny_generator(), critic(pack=3), batches=1, batch_size=4)
    assert all(torch.isfinite(s).all() for s in scores.values())
