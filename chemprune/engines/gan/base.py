"""The adversarial-training engine family: WGAN-GP on graphs, owning the training step.

::

    gan = GAN_ENGINES.get("mgo_gan")(generator=g, critic=d, seed=0)
    for real in batches:                  # one-hot (x [B, N, T], adj [B, N, N, Y])
        stats = gan.train_step(real)      # a critic update; every n_critic-th also a generator one
    atoms, bonds, which = sample_graphs(gan.generator, 1000, seed=0)

Every call of :meth:`AdversarialTraining.train_step` consumes one real batch and updates the
critic with the WGAN-GP loss (Gulrajani et al. 2017: ``D(fake) - D(real) + gp_weight *
(||grad D(x_hat)|| - 1)^2`` at random interpolates of real and fake graphs, the gradient taken
over node and adjacency tensors together); after every ``n_critic`` critic updates it also
updates the generator (``-D(fake)``). Fake graphs reach the critic as softmax probabilities
(MolGAN's relaxation); the noise, the generator of each sample (``i mod K``, so all K get equal
shares) and the interpolation weights come from the engine's own random stream, which is part
of :meth:`state_dict`: a resumed run continues exactly.

Optional generator terms, the family's members (:data:`GAN_ENGINES`):

* ``classifier_weight`` (MGAN, Hoang et al. 2018): the critic's head learns, on fake graphs,
  which generator made each one (cross-entropy); the generators minimise the same
  cross-entropy, so each is rewarded for being identifiable.
* ``orthogonal_weight`` (MGO-GAN, Li et al. 2021): the mean over generator pairs of the squared
  cosine between their samples' mean graph embeddings (the critic's aggregation layer, used as
  the encoder), :func:`orthogonality`; zero when the generators' embeddings are orthogonal.
* ``teacher`` + ``distill_weight``: the generator also matches a frozen teacher generator's
  probabilities on the same noise, on the teacher's content slots (its real atoms and the bonds
  between them, :func:`content_mask`): the fine-tuning of a compressed generator
  (:mod:`chemprune.engines.gan.compress`).
* ``mode_seeking`` (MSGAN, Mao et al. 2019): a second noise vector per sample, for the same
  generator, and the term ``mean d(z1, z2) / (d(G(z1), G(z2)) + eps)``
  (:func:`~chemprune.engines.gan.diversity.mode_seeking_term`), which is large when a generator
  ignores its noise.
* ``valence_weight`` with ``max_valence``/``bond_order`` (the chemistry, as vectors): the
  generator's softmax graphs pay :func:`~chemprune.engines.gan.penalties.validity_penalties`
  (expected valence over the expected largest, isolated atoms, bonds on padding): validity
  help without reinforcement learning.
* ``reward_fn`` + ``rl_weight`` (MolGAN, De Cao & Kipf 2018): a reward network
  (:class:`~chemprune.engines.gan.reward.RewardLearner`) learns ``reward_fn`` of the fake
  batch's discrete graphs in every critic step; from critic step ``rl_warmup`` on, the
  generator's loss is ``(1 - rl_weight) * loss + rl_weight * -mean R(G(z))``, ``loss`` the
  WGAN loss with the terms above (the valence penalty is added after the mix).

``same_noise`` is MGAN's layout in its official code (qhoangdl/MGAN): one minibatch of noise
goes through every generator. The fake batch keeps the real batch's size B, so ``ceil(B / K)``
noise vectors are drawn and sample ``i`` (generator ``i mod K``) gets vector ``i // K``: the K
samples ``kK .. kK + K - 1`` share one z, one per generator. The default is the paper's
model as written, a generator index ``u ~ Mult(pi)`` independent of z (here ``i mod K``).

A critic with ``pack = m`` (PacGAN) scores ``m`` consecutive graphs together: real packs come
from the real batch, fake packs from the generated one, the batch size must be divisible by
``m``, and the gradient penalty takes one interpolation weight and one gradient norm per pack.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from chemprune.engines.gan.diversity import mode_seeking_term
from chemprune.engines.gan.models import GraphCritic, GraphGenerator
from chemprune.engines.gan.penalties import validity_penalties
from chemprune.engines.gan.reward import RewardFn, RewardLearner
from chemprune.engines.gan.terms import content_mask, gradient_penalty, orthogonality
from chemprune.engines.registry import Registry

__all__ = [
    "GAN_ENGINES",
    "AdversarialTraining",
    "content_mask",
    "draw_noise",
    "gradient_penalty",
    "one_hot_graphs",
    "orthogonality",
    "register_gan",
    "sample_graphs",
]

Graphs = tuple[Tensor, Tensor]


def one_hot_graphs(atoms: Tensor, bonds: Tensor, atom_types: int, bond_types: int) -> Graphs:
    """Integer graphs ``atoms [B, N]``, ``bonds [B, N, N]`` as one-hot float tensors."""
    return (
        F.one_hot(atoms.long(), atom_types).float(),
        F.one_hot(bonds.long(), bond_types).float(),
    )


def draw_noise(
    gen: GraphGenerator, n: int, rng: torch.Generator, *, same_noise: bool = False
) -> tuple[Tensor, Tensor]:
    """``(z [n, z_dim], which [n])``: standard normal noise from ``rng`` and the generator of
    each sample, ``i mod K`` (equal shares). ``same_noise``: ``ceil(n / K)`` vectors, sample
    ``i`` gets vector ``i // K``, so the K generators see the same noise (MGAN's code)."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    k = gen.num_generators
    which = torch.arange(n) % k
    if same_noise:
        z = torch.randn(-(-n // k), gen.z_dim, generator=rng)
        return z.repeat_interleave(k, dim=0)[:n], which
    return torch.randn(n, gen.z_dim, generator=rng), which


@torch.no_grad()
def sample_graphs(
    gen: GraphGenerator, n: int, *, seed: int = 0, batch_size: int = 1024
) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` integer graphs ``(atoms [n, N], bonds [n, N, N], which [n])`` from ``gen`` (the
    most likely type per slot), reproducible from ``seed``."""
    rng = torch.Generator().manual_seed(int(seed))
    z, which = draw_noise(gen, n, rng)
    was = gen.training
    gen.eval()
    atoms, bonds = [], []
    for i in range(0, n, batch_size):
        nodes, edges = gen(z[i : i + batch_size], which[i : i + batch_size])
        atoms.append(nodes.argmax(-1))
        bonds.append(edges.argmax(-1))
    gen.train(was)
    return torch.cat(atoms), torch.cat(bonds), which


class AdversarialTraining:
    """WGAN-GP training of a :class:`GraphGenerator` against a :class:`GraphCritic`.

    Args:
        generator, critic: the networks (the critic needs a K-way head for the classifier term).
        lr, betas: Adam for both (MolGAN: 1e-3; WGAN-GP: betas (0.5, 0.9)).
        n_critic: critic updates per generator update (WGAN-GP and MolGAN: 5).
        gp_weight: the gradient penalty's weight (10).
        classifier_weight, orthogonal_weight: the optional generator terms (``None``: the
            member's default).
        teacher, distill_weight: distillation from a frozen generator (see the module).
        mode_seeking: MSGAN's weight (0: off).
        same_noise: MGAN's code's noise layout (see the module).
        valence_weight, max_valence, bond_order: the validity penalties' weight (0: off) and
            the chemistry they need, ``[T]`` and ``[Y]``.
        reward_fn, rl_weight, rl_warmup: MolGAN's reward (``[B]`` of discrete one-hot graphs),
            its weight in [0, 1] (0: off, no reward network) and the GAN-only critic steps first.
        seed: the engine's random stream.
    """

    name: str = "base"
    default_classifier_weight: float = 0.0
    default_orthogonal_weight: float = 0.0

    def __init__(
        self,
        *,
        generator: GraphGenerator,
        critic: GraphCritic,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.9),
        n_critic: int = 5,
        gp_weight: float = 10.0,
        classifier_weight: float | None = None,
        orthogonal_weight: float | None = None,
        teacher: GraphGenerator | None = None,
        distill_weight: float = 0.0,
        mode_seeking: float = 0.0,
        same_noise: bool = False,
        valence_weight: float = 0.0,
        max_valence: Tensor | None = None,
        bond_order: Tensor | None = None,
        reward_fn: RewardFn | None = None,
        rl_weight: float = 0.0,
        rl_warmup: int = 0,
        seed: int = 0,
    ) -> None:
        cw = self.default_classifier_weight if classifier_weight is None else classifier_weight
        ow = self.default_orthogonal_weight if orthogonal_weight is None else orthogonal_weight
        for what, v in (("lr", lr),):
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{what} must be a positive finite number, got {v}")
        for what, v in (
            ("gp_weight", gp_weight), ("classifier_weight", cw), ("orthogonal_weight", ow),
            ("distill_weight", distill_weight), ("mode_seeking", mode_seeking),
            ("valence_weight", valence_weight),
        ):  # fmt: skip
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{what} must be a finite number >= 0, got {v}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        if not (0 <= rl_weight <= 1 and rl_warmup >= 0):
            raise ValueError(f"rl_weight must be in [0, 1] and rl_warmup >= 0, got {rl_weight}, "
                             f"{rl_warmup}")  # fmt: skip
        if rl_weight > 0 and reward_fn is None:
            raise ValueError("rl_weight > 0 needs a reward_fn")
        if valence_weight > 0 and (max_valence is None or bond_order is None):
            raise ValueError("valence_weight > 0 needs the max_valence and bond_order vectors")
        k = generator.num_generators
        if cw > 0:
            head = critic.classifier
            if k < 2:
                raise ValueError("the classifier term needs at least two generators")
            if head is None or head.out_features != k:
                raise ValueError(
                    f"the classifier term needs a critic with a {k}-way generator head "
                    f"(GraphCritic(num_generators={k}))"
                )
        if ow > 0 and k < 2:
            raise ValueError("the orthogonality term needs at least two generators")
        if distill_weight > 0 and teacher is None:
            raise ValueError("distill_weight > 0 needs a teacher generator")
        if teacher is not None:
            if (teacher.max_atoms, teacher.atom_types, teacher.bond_types, teacher.z_dim) != (
                generator.max_atoms, generator.atom_types, generator.bond_types,
                generator.z_dim,
            ) or teacher.num_generators != k:  # fmt: skip
                raise ValueError("the teacher generator's graph size, noise or K differ")
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.generator, self.critic, self.teacher = generator, critic, teacher
        self.classifier_weight, self.orthogonal_weight = float(cw), float(ow)
        self.distill_weight, self.mode_seeking = float(distill_weight), float(mode_seeking)
        self.pack = int(getattr(critic, "pack", 1))
        self.n_critic, self.gp_weight = int(n_critic), float(gp_weight)
        self.g_optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
        self.d_optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
        self.same_noise, self.valence_weight = bool(same_noise), float(valence_weight)
        self.valence_tables = None
        if valence_weight > 0:
            tables = tuple(
                torch.as_tensor(v, dtype=torch.float32) for v in (max_valence, bond_order)
            )
            if [t.shape for t in tables] != [(generator.atom_types,), (generator.bond_types,)]:
                raise ValueError("max_valence must be [T] and bond_order [Y] (the type counts)")
            self.valence_tables = tables
        self.rl_weight, self.rl_warmup = float(rl_weight), int(rl_warmup)
        self.reward = None
        if rl_weight > 0:
            self.reward = RewardLearner(critic, reward_fn, lr=lr, betas=betas, seed=seed + 1)
        self.rng = torch.Generator().manual_seed(int(seed))
        self.step = 0

    # ------------------------------------------------------------------ sampling
    def noise(self, n: int) -> tuple[Tensor, Tensor]:
        return draw_noise(self.generator, n, self.rng, same_noise=self.same_noise)

    def fake(self, n: int) -> tuple[Graphs, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """``((x, adj) probabilities, which, z, logits)`` of ``n`` fresh samples."""
        z, which = self.noise(n)
        nodes, edges = self.generator(z, which)
        return (nodes.softmax(-1), edges.softmax(-1)), which, z, (nodes, edges)

    # ------------------------------------------------------------------ updates
    def critic_step(self, real: Graphs) -> dict[str, float]:
        self.critic.train()
        b = real[0].shape[0]
        with torch.no_grad():
            fake, which, _, _ = self.fake(b)
        d_real = self.critic(*real)[0]
        d_fake, logits, _ = self.critic(*fake)
        eps = torch.rand(b // self.pack, generator=self.rng).repeat_interleave(self.pack)
        gp = gradient_penalty(self.critic, real, fake, eps)
        wdist = d_real.mean() - d_fake.mean()
        loss = -wdist + self.gp_weight * gp
        stats = {"wasserstein": float(wdist.detach()), "gp": float(gp.detach())}
        if self.classifier_weight:
            ce = F.cross_entropy(logits, which)
            loss = loss + self.classifier_weight * ce
            stats["classifier_ce"] = float(ce.detach())
        self._check(loss, "critic")
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        stats["d_loss"] = float(loss.detach())
        if self.reward is not None:
            stats.update(self.reward.fit(*fake))
        return stats

    def generator_loss(self, n: int) -> tuple[Tensor, dict[str, float]]:
        fake, which, z, (nodes, edges) = self.fake(n)
        score, logits, emb = self.critic(*fake)
        loss = -score.mean()
        stats: dict[str, float] = {"g_adv": float(loss.detach())}
        if self.classifier_weight:
            ce = F.cross_entropy(logits, which)
            loss = loss + self.classifier_weight * ce
            stats["g_classifier_ce"] = float(ce.detach())
        if self.orthogonal_weight:
            orth = orthogonality(emb, which, self.generator.num_generators)
            loss = loss + self.orthogonal_weight * orth
            stats["orthogonality"] = float(orth.detach())
        if self.distill_weight:
            kd = self.distill_loss(z, which, fake)
            loss = loss + self.distill_weight * kd
            stats["distill"] = float(kd.detach())
        if self.mode_seeking:
            z2 = draw_noise(self.generator, n, self.rng, same_noise=self.same_noise)[0]
            nodes2, edges2 = self.generator(z2, which)
            ms = mode_seeking_term(z, z2, fake, (nodes2.softmax(-1), edges2.softmax(-1)))
            loss = loss + self.mode_seeking * ms
            stats["mode_seeking"] = float(ms.detach())
        if self.reward is not None and self.step >= self.rl_warmup:
            r = self.reward(*fake).mean()
            loss = (1 - self.rl_weight) * loss - self.rl_weight * r
            stats["g_reward"] = float(r.detach())
        if self.valence_tables is not None:
            terms = validity_penalties(*fake, *self.valence_tables)
            pen = sum(terms.values()).mean()
            loss = loss + self.valence_weight * pen
            stats.update({f"penalty_{k}": float(v.detach().mean()) for k, v in terms.items()})
        return loss, stats

    def distill_loss(self, z: Tensor, which: Tensor, fake: Graphs) -> Tensor:
        """Squared error to the teacher's probabilities on the teacher's content slots."""
        with torch.no_grad():
            t_nodes, t_edges = self.teacher(z, which)
        atom, pair = content_mask(t_nodes)
        node_err = ((fake[0] - t_nodes.softmax(-1)) ** 2).sum(-1)
        edge_err = ((fake[1] - t_edges.softmax(-1)) ** 2).sum(-1)
        nodes_part = (node_err * atom).sum() / atom.sum().clamp(min=1)
        return nodes_part + (edge_err * pair).sum() / pair.sum().clamp(min=1)

    def generator_step(self, n: int) -> dict[str, float]:
        self.generator.train()
        judges = [*self.critic.parameters()]
        if self.reward is not None:
            judges += self.reward.net.parameters()
        for p in judges:
            p.requires_grad_(False)
        try:
            loss, stats = self.generator_loss(n)
        finally:
            for p in judges:
                p.requires_grad_(True)
        self._check(loss, "generator")
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optimizer.step()
        stats["g_loss"] = float(loss.detach())
        return stats

    def train_step(self, real: Graphs) -> dict[str, float]:
        """One critic update on ``real``; every ``n_critic``-th call also a generator update."""
        if real[0].shape[0] % self.pack:
            raise ValueError(
                f"the batch size {real[0].shape[0]} is not divisible by the critic's pack "
                f"{self.pack} (PacGAN judges {self.pack} graphs at once)"
            )
        stats = self.critic_step(real)
        self.step += 1
        if self.step % self.n_critic == 0:
            stats.update(self.generator_step(real[0].shape[0]))
        stats["step"] = self.step
        return stats

    def _check(self, loss: Tensor, who: str) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the {who} loss is {float(loss.detach())} at step {self.step}: lower the learning rate"
            )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Optimizers, step, random stream and the reward network with its optimizer (the
        generator's and critic's own state dicts hold their weights)."""
        return {
            "name": self.name,
            "step": self.step,
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "rng": self.rng.get_state(),
            **({"reward": self.reward.state_dict()} if self.reward is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"a {state.get('name')!r} GAN training state, not {self.name!r}")
        self.step = int(state["step"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.rng.set_state(state["rng"])
        if (self.reward is None) != ("reward" not in state):
            raise ValueError("the training state and this engine differ in the reward network")
        if self.reward is not None:
            self.reward.load_state_dict(state["reward"])


GAN_ENGINES: Registry[AdversarialTraining] = Registry("GAN training", AdversarialTraining)
register_gan = GAN_ENGINES.register


@register_gan("wgan_gp")
class WGANGP(AdversarialTraining):
    """WGAN-GP alone (MolGAN without its reward network); with K > 1 generators, MGAN's
    parameter sharing without its classifier."""


@register_gan("mgan")
class MGAN(AdversarialTraining):
    """WGAN-GP + MGAN's generator classifier (weight 1 unless given)."""

    default_classifier_weight = 1.0


@register_gan("mgo_gan")
class MGOGAN(AdversarialTraining):
    """WGAN-GP + MGO-GAN's orthogonality term (weight 1 unless given); give
    ``classifier_weight`` to add MGAN's classifier too."""

    default_orthogonal_weight = 1.0
