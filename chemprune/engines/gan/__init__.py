"""Generative adversarial networks on plain ``torch.nn.Module``s: molecular graphs.

The engines (:data:`GAN_ENGINES`: ``wgan_gp``, ``mgan``, ``mgo_gan``) own the WGAN-GP training
step (:mod:`.base`) of MolGAN-style networks (:mod:`.models`: K generators sharing a trunk, a
relational-GCN critic); :mod:`.metrics` scores generated molecules and :mod:`.compress` prunes a
trained generator's channels by content-aware importance, for real. :mod:`.penalties` holds the
differentiable validity penalties and :mod:`.reward` MolGAN's reward network (the chemistry
comes in as vectors and a callable).
"""

from chemprune.engines.gan.base import (
    GAN_ENGINES,
    AdversarialTraining,
    content_mask,
    draw_noise,
    gradient_penalty,
    one_hot_graphs,
    orthogonality,
    register_gan,
    sample_graphs,
)
from chemprune.engines.gan.models import GraphCritic, GraphGenerator, RelationalGraphConv
from chemprune.engines.gan.penalties import validity_penalties
from chemprune.engines.gan.reward import RewardLearner

__all__ = [
    "GAN_ENGINES", "AdversarialTraining", "content_mask", "draw_noise", "gradient_penalty", "one_hot_graphs",
    "orthogonality", "register_gan", "sample_graphs", "GraphCritic", "GraphGenerator", "RelationalGraphConv",
    "RewardLearner", "validity_penalties",
]  # fmt: skip
