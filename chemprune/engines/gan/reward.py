"""MolGAN's reward network (De Cao & Kipf 2018): a critic-shaped network that learns to predict
a non-differentiable reward of generated graphs, so the generator can climb it by gradient.

The reward itself is a callable ``reward_fn((x, adj)) -> [B]`` on *discrete* one-hot graphs
(the pipeline's: RDKit validity, optionally times QED); the engine never sees the chemistry.
:class:`RewardLearner` holds the network (a :class:`~chemprune.engines.gan.models.GraphCritic`
of the critic's configuration without generator head, batch features or packs, its score
through a sigmoid: rewards lie in [0, 1]) and its Adam optimizer. :meth:`RewardLearner.fit`
takes one step on a fake batch: the network sees the generator's softmax probabilities (as the
critic does, and as it will in the generator's loss; MolGAN's official code) and regresses, by
mean squared error, the reward of the batch's most likely discrete graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from chemprune.engines.gan.models import GraphCritic

__all__ = ["RewardFn", "RewardLearner", "discretise"]

RewardFn = Callable[[tuple[Tensor, Tensor]], Tensor]


def discretise(nodes: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """The most likely graph of each sample, one-hot: ``(x [B, N, T], adj [B, N, N, Y])``."""
    return (
        F.one_hot(nodes.argmax(-1), nodes.shape[-1]).to(nodes.dtype),
        F.one_hot(edges.argmax(-1), edges.shape[-1]).to(edges.dtype),
    )


class RewardLearner:
    """A reward network shaped like ``critic`` and its optimizer.

    Args:
        critic: the GAN's critic (its configuration is copied; no weights are shared).
        reward_fn: the reward of discrete one-hot graphs, ``[B]``.
        lr, betas: Adam.
        seed: the network's initial weights (the global random state is left as it was).
    """

    def __init__(
        self,
        critic: GraphCritic,
        reward_fn: RewardFn,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.9),
        seed: int = 0,
    ) -> None:
        config = {**critic.config(), "num_generators": 0, "minibatch_std": False,
                  "batch_features": 0, "pack": 1}  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = GraphCritic.from_config(config)
        self.reward_fn = reward_fn
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, betas=betas)

    def __call__(self, nodes: Tensor, edges: Tensor) -> Tensor:
        """The predicted reward ``[B]`` in (0, 1) of probabilities (or one-hot graphs)."""
        return torch.sigmoid(self.net(nodes, edges)[0])

    def targets(self, nodes: Tensor, edges: Tensor) -> Tensor:
        """``reward_fn`` of the most likely graphs, a float ``[B]`` (checked)."""
        with torch.no_grad():
            r = torch.as_tensor(self.reward_fn(discretise(nodes, edges)), dtype=nodes.dtype)
        if r.shape != nodes.shape[:1]:
            raise ValueError(f"reward_fn must return [{nodes.shape[0]}], got {list(r.shape)}")
        return r

    def fit(self, nodes: Tensor, edges: Tensor) -> dict[str, float]:
        """One MSE step on a fake batch of probabilities (detached here)."""
        nodes, edges = nodes.detach(), edges.detach()
        target = self.targets(nodes, edges)
        self.net.train()
        loss = F.mse_loss(self(nodes, edges), target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the reward network's loss is {float(loss)}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"reward_mse": float(loss.detach()), "reward": float(target.mean())}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
