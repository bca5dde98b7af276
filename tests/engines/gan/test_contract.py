"""One contract, run over every registered GAN training engine."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from chemprune.engines.gan import GAN_ENGINES
from tests.engines.gan.conftest import real_batch, tiny_critic, tiny_generator


def make(name: str, seed: int = 0):
    g, d = tiny_generator(), tiny_critic()
    return GAN_ENGINES.get(name)(generator=g, critic=d, n_critic=2, seed=seed), g, d


def params(m):
    return [p.detach().clone() for p in m.parameters()]


def changed(before, m) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


@pytest.mark.parametrize("name", GAN_ENGINES.names())
def test_critic_every_step_generator_every_n_critic(name):
    eng, g, d = make(name)
    g0, d0 = params(g), params(d)
    stats = eng.train_step(real_batch(0))
    assert changed(d0, d) and not changed(g0, g) and "g_loss" not in stats
    assert {"wasserstein", "gp", "d_loss", "step"} <= set(stats)
    stats = eng.train_step(real_batch(1))
    assert changed(g0, g) and "g_loss" in stats and stats["step"] == 2
    assert all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("name", GAN_ENGINES.names())
def test_resume_continues_exactly(name):
    eng, g, d = make(name)
    for i in range(3):
        eng.train_step(real_batch(i))
    saved = copy.deepcopy((g.state_dict(), d.state_dict(), eng.state_dict()))
    for i in range(3, 7):
        eng.train_step(real_batch(i))

    other, g2, d2 = make(name, seed=123)  # another seed: the state must override it
    g2.load_state_dict(saved[0])
    d2.load_state_dict(saved[1])
    other.load_state_dict(saved[2])
    for i in range(3, 7):
        other.train_step(real_batch(i))
    for a, b in zip([*g.parameters(), *d.parameters()], [*g2.parameters(), *d2.parameters()],
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", GAN_ENGINES.names())
def test_foreign_state_is_refused(name):
    other = [n for n in GAN_ENGINES.names() if n != name][0]
    state = make(other)[0].state_dict()
    with pytest.raises(ValueError, match="GAN training state"):
        make(name)[0].load_state_dict(state)


@pytest.mark.parametrize("name", GAN_ENGINES.names())
def test_a_nan_loss_is_a_clear_error(name):
    eng, g, d = make(name)
    with torch.no_grad():
        d.score.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="critic loss is nan"):
        eng.train_step(real_batch(0))
