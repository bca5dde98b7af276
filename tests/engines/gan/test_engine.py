"""WGAN-GP pieces: the gradient penalty, shared generators, the MGAN and MGO-GAN terms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.gan import (
    GAN_ENGINES,
    GraphGenerator,
    content_mask,
    gradient_penalty,
    orthogonality,
    sample_graphs,
)
from tests.engines.gan.conftest import real_batch, tiny_critic, tiny_generator


class LinearCritic(nn.Module):
    """D(x, a) = <wx, x> + <wa, a>: its input gradient is (wx, wa) everywhere."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.wx = nn.Parameter(torch.randn(9, 5) * 0.1)
        self.wa = nn.Parameter(torch.randn(9, 9, 4) * 0.1)

    def forward(self, x, a):
        return (x * self.wx).sum((1, 2)) + (a * self.wa).sum((1, 2, 3)), None, None


def test_gradient_penalty_matches_hand_computation():
    critic = LinearCritic()
    real = real_batch(0, 4)
    fake = (torch.rand_like(real[0]), torch.rand_like(real[1]))
    gp = gradient_penalty(critic, real, fake, torch.rand(4))
    norm = torch.sqrt(critic.wx.pow(2).sum() + critic.wa.pow(2).sum())
    torch.testing.assert_close(gp, (norm - 1) ** 2)
    gp.backward()  # the penalty trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    torch.testing.assert_close(critic.wx.grad, 2 * (norm - 1) * critic.wx / norm)


def test_generators_share_all_but_their_first_layer():
    g = tiny_generator(k=3)
    names = {n for n, _ in g.named_parameters()}
    assert {f"first.{k}.weight" for k in range(3)} <= names
    assert sum(n.startswith("first.") for n in names) == 6  # 3 weights + 3 biases, nothing else
    z = torch.randn(4, g.z_dim)
    nodes, edges = g(z, torch.zeros(4, dtype=torch.long))  # every sample from generator 0
    (nodes.sum() + edges.sum()).backward()
    grads = {
        n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in g.named_parameters()
    }
    assert grads["first.0.weight"] and grads["trunk.0.weight"] and grads["edges.weight"]
    assert not grads["first.1.weight"] and not grads["first.2.weight"]
    # generators differ only through their first layer
    a = g(z, torch.zeros(4, dtype=torch.long))
    b = g(z, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a[0], b[0])
    with torch.no_grad():
        g.first[1].load_state_dict(g.first[0].state_dict())
    torch.testing.assert_close(g(z, torch.ones(4, dtype=torch.long))[0], a[0])


def test_edges_are_symmetric():
    g = tiny_generator()
    _, edges = g(torch.randn(5, g.z_dim), torch.arange(5) % 3)
    torch.testing.assert_close(edges, edges.transpose(1, 2))


def test_orthogonality_term():
    which = torch.tensor([0, 0, 1, 1, 2, 2])
    e = torch.zeros(6, 3)
    e[0:2, 0], e[2:4, 1], e[4:6, 2] = 1.0, 2.0, 0.5
    assert float(orthogonality(e, which, 3)) == pytest.approx(0.0)
    same = torch.ones(6, 3)
    assert float(orthogonality(same, which, 3)) == pytest.approx(1.0)
    half = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos 45 degrees: cos^2 = 1/2
    assert float(orthogonality(half, torch.tensor([0, 1]), 2)) == pytest.approx(0.5)
    assert float(orthogonality(e, torch.zeros(6, dtype=torch.long), 3)) == 0.0


def test_terms_need_what_they_need():
    with pytest.raises(ValueError, match="3-way generator head"):
        GAN_ENGINES.get("mgan")(generator=tiny_generator(3), critic=tiny_critic(0))
    with pytest.raises(ValueError, match="at least two generators"):
        GAN_ENGINES.get("mgo_gan")(generator=tiny_generator(1), critic=tiny_critic(0))
    with pytest.raises(ValueError, match="needs a teacher"):
        GAN_ENGINES.get("wgan_gp")(generator=tiny_generator(), critic=tiny_critic(),
                                   distill_weight=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="num_generators"):
        GraphGenerator(num_generators=0)


def test_classifier_term_teaches_the_critic_to_tell_generators_apart():
    torch.manual_seed(0)
    eng = GAN_ENGINES.get("mgan")(generator=tiny_generator(), critic=tiny_critic(), n_critic=1,
                                  lr=1e-2, classifier_weight=10.0)  # fmt: skip
    first = eng.train_step(real_batch(0))["classifier_ce"]
    assert first == pytest.approx(1.1, abs=0.05)  # ln 3: at first the generators look alike
    ces = [eng.train_step(real_batch(i))["classifier_ce"] for i in range(60)]
    assert sum(ces[-10:]) / 10 < 0.7 * first


def test_orthogonality_term_drives_generators_apart():
    torch.manual_seed(0)
    eng = GAN_ENGINES.get("mgo_gan")(generator=tiny_generator(), critic=tiny_critic(), n_critic=1,
                                     orthogonal_weight=10.0, lr=3e-3)  # fmt: skip
    first = eng.train_step(real_batch(0))["orthogonality"]
    for i in range(40):
        last = eng.train_step(real_batch(i))["orthogonality"]
    assert last < first


def test_distillation_pulls_the_student_to_the_teacher():
    teacher, student = tiny_generator(seed=0), tiny_generator(seed=5)
    eng = GAN_ENGINES.get("wgan_gp")(generator=student, critic=tiny_critic(), n_critic=1,
                                     teacher=teacher, distill_weight=100.0, lr=3e-3)  # fmt: skip
    first = eng.train_step(real_batch(0))["distill"]
    for i in range(40):
        last = eng.train_step(real_batch(i))["distill"]
    assert last < 0.5 * first
    assert not any(p.requires_grad for p in teacher.parameters())


def test_content_mask_and_sampling():
    nodes = torch.zeros(1, 3, 5)
    nodes[0, 0, 1] = nodes[0, 1, 3] = nodes[0, 2, 0] = 1.0  # C, O, padding
    atom, pair = content_mask(nodes)
    assert atom.tolist() == [[1.0, 1.0, 0.0]]
    assert pair[0].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    g = tiny_generator()
    a1, b1, w1 = sample_graphs(g, 7, seed=3)
    a2, b2, _ = sample_graphs(g, 7, seed=3, batch_size=2)
    assert torch.equal(a1, a2) and torch.equal(b1, b2) and w1.tolist() == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError, match=">= 1"):
        sample_graphs(g, 0)


def test_batch_spread_is_the_mean_feature_deviation():
    from chemprune.engines.gan.models import batch_spread

    emb = torch.tensor([[0.0, 1.0], [2.0, 5.0]])  # per-feature std (biased) 1 and 2
    assert batch_spread(emb).item() == pytest.approx(1.5, abs=1e-4)
    assert batch_spread(emb[:1]).item() == 0.0  # one sample has no spread


def test_minibatch_std_critic_sees_the_batch_and_old_configs_load():
    from chemprune.engines.gan import GraphCritic

    torch.manual_seed(1)
    critic = GraphCritic(conv=(16, 8), aggregate=16, mlp=(16, 8), minibatch_std=True)
    x, a = real_batch(size=8)
    alone = torch.cat([critic(x[i : i + 1], a[i : i + 1])[0] for i in range(8)])
    together = critic(x, a)[0]
    assert not torch.allclose(alone, together)  # the score depends on the rest of the batch
    old = tiny_critic(k=0).config()
    old.pop("minibatch_std")
    assert GraphCritic.from_config(old).minibatch_std is False
