"""Generator files: round trip, foreign and damaged files refused with one clear line."""

from __future__ import annotations

import pytest
import torch

from chemprune.common.atomic import CheckpointError, atomic_save
from chemprune.engines.gan.checkpoint import generator_checkpoint, load_generator
from tests.engines.gan.conftest import tiny_critic, tiny_generator


def test_round_trip(tmp_path):
    g, d = tiny_generator(), tiny_critic()
    atomic_save(generator_checkpoint(g, d, engine="mgan"), tmp_path / "g.pt")
    g2, d2, ckpt = load_generator(tmp_path / "g.pt")
    z, w = torch.randn(4, g.z_dim), torch.arange(4) % 3
    for a, b in zip(g(z, w), g2(z, w), strict=True):
        torch.testing.assert_close(a, b)
    assert ckpt["engine"] == "mgan" and d2.classifier.out_features == 3


def test_foreign_and_damaged_files(tmp_path):
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.molecules.models.schnet import SchNet

    schnet = model_checkpoint(SchNet(hidden_channels=8, filter_channels=8, num_interactions=1,
                                     num_gaussians=8), target={"name": "gap"})  # fmt: skip
    atomic_save(schnet, tmp_path / "s.pt")
    with pytest.raises(
        CheckpointError, match="SchNet checkpoint .* not a chemprune graph generator"
    ):
        load_generator(tmp_path / "s.pt")
    ckpt = generator_checkpoint(tiny_generator(), tiny_critic(), engine="wgan_gp")
    ckpt["state_dict"]["trunk.0.weight"][0, 0] += 1.0
    atomic_save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_generator(tmp_path / "bad.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_generator(tmp_path / "empty.pt")
