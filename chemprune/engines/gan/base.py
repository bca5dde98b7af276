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

A critic with ``pack = m`` (PacGAN) scores ``m`` consecutive graphs together: real packs come
from the real batch, fake packs from the generated one, the batch size must be divisible by
``m``, and the gradient penalty takes one interpolation weight and one gradient norm per pack.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chemprune.engines.gan.diversity import mode_seeking_term
from chemprune.engines.gan.models import GraphCritic, GraphGenerator
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


def gradient_penalty(critic: nn.Module, real: Graphs, fake: Graphs, eps: Tensor) -> Tensor:
    """``mean_b (||grad_(x,adj) D(x_hat_b, adj_hat_b)|| - 1)^2`` at ``x_hat = eps*real +
    (1-eps)*fake`` (``eps [B]``, one weight per graph for both tensors). A critic that scores
    packs of ``m`` graphs (``B / m`` scores) gets one norm per pack, over its ``m`` graphs'
    inputs together (give the pack's members the same ``eps``)."""
    ex = eps.view(-1, 1, 1)
    ea = eps.view(-1, 1, 1, 1)
    x = (ex * real[0] + (1 - ex) * fake[0]).detach().requires_grad_(True)
    a = (ea * real[1] + (1 - ea) * fake[1]).detach().requires_grad_(True)
    score = critic(x, a)[0]
    gx, ga = torch.autograd.grad(score.sum(), (x, a), create_graph=True)
    sq = gx.flatten(1).pow(2).sum(1) + ga.flatten(1).pow(2).sum(1)
    norm = torch.sqrt(sq.view(score.shape[0], -1).sum(1) + 1e-12)
    return ((norm - 1) ** 2).mean()


def orthogonality(embeddings: Tensor, which: Tensor, num_generators: int) -> Tensor:
    """Mean over generator pairs ``i < j`` of ``cos(e_i, e_j)^2``, ``e_k`` the mean embedding
    of generator k's samples (0 for one generator, or when a generator has no sample)."""
    means = []
    for k in range(num_generators):
        sel = which == k
        if bool(sel.any()):
            means.append(embeddings[sel].mean(0))
    if len(means) < 2:
        return embeddings.new_zeros(())
    e = F.normalize(torch.stack(means), dim=1, eps=1e-8)
    cos = e @ e.T
    i, j = torch.triu_indices(len(means), len(means), offset=1)
    return (cos[i, j] ** 2).mean()


def content_mask(nodes: Tensor) -> tuple[Tensor, Tensor]:
    """The content slots of graphs with node probabilities/logits ``nodes [B, N, T]``: the atoms
    whose most likely type is not padding ``[B, N]`` and the pairs of such atoms ``[B, N, N]``
    (off the diagonal), as float masks."""
    atom = (nodes.argmax(-1) != 0).float()
    pair = atom.unsqueeze(2) * atom.unsqueeze(1)
    pair = pair * (1 - torch.eye(nodes.shape[1], device=nodes.device))
    return atom, pair


def draw_noise(gen: GraphGenerator, n: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(z [n, z_dim], which [n])``: standard normal noise from ``rng`` and the generator of
    each sample, ``i mod K`` (equal shares)."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    return torch.randn(n, gen.z_dim, generator=rng), torch.arange(n) % gen.num_generators


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
        ):  # fmt: skip
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{what} must be a finite number >= 0, got {v}")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
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
        self.rng = torch.Generator().manual_seed(int(seed))
        self.step = 0

    # ------------------------------------------------------------------ sampling
    def noise(self, n: int) -> tuple[Tensor, Tensor]:
        return draw_noise(self.generator, n, self.rng)

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
            z2 = torch.randn(z.shape, generator=self.rng)
            nodes2, edges2 = self.generator(z2, which)
            ms = mode_seeking_term(z, z2, fake, (nodes2.softmax(-1), edges2.softmax(-1)))
            loss = loss + self.mode_seeking * ms
            stats["mode_seeking"] = float(ms.detach())
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
        for p in self.critic.parameters():
            p.requires_grad_(False)
        try:
            loss, stats = self.generator_loss(n)
        finally:
            for p in self.critic.parameters():
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
        """Optimizers, step and random stream (the networks' own state dicts hold weights)."""
        return {
            "name": self.name,
            "step": self.step,
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"a {state.get('name')!r} GAN training state, not {self.name!r}")
        self.step = int(state["step"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.rng.set_state(state["rng"])


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
