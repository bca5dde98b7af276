"""Interaction-block kinds: the forms architecture search derives."""

from __future__ import annotations

import pytest
import torch

from chemprune.molecules.models.blocks import BLOCK_KINDS, InteractionBlock
from chemprune.molecules.models.schnet import SchNet


def tiny(kinds):
    torch.manual_seed(0)
    return SchNet(hidden_channels=16, filter_channels=8, num_interactions=len(kinds),
                  num_gaussians=10, cutoff=4.0, block_kinds=kinds)  # fmt: skip


def molecules():
    z = torch.tensor([6, 1, 1, 8, 1])
    pos = torch.tensor([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [3, 0, 0], [3.9, 0.3, 0]])
    return z, pos.float(), torch.tensor([0, 0, 0, 1, 1])


def test_every_kind_predicts_and_rebuilds_from_its_config():
    model = tiny(["cfconv", "linear_filter", "atomwise"])
    z, pos, batch = molecules()
    out = model(z, pos, batch)
    assert out.shape == (2,) and torch.isfinite(out).all()
    assert model.config()["block_kinds"] == ["cfconv", "linear_filter", "atomwise"]
    rebuilt = SchNet.from_config(model.config())
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(z, pos, batch), out)
    assert "block_kinds=['cfconv', 'linear_filter', 'atomwise']" in repr(model)
    assert "block_kinds" not in tiny(["cfconv"]).config()  # default models unchanged


def test_atomwise_blocks_pass_no_messages():
    model = tiny(["atomwise", "atomwise"])
    z, pos, batch = molecules()
    moved = pos.clone()
    moved[1] += torch.tensor([0.3, -0.2, 0.1])  # a neighbour moves
    torch.testing.assert_close(model(z, pos, batch), model(z, moved, batch))
    assert tiny(["linear_filter"])(z, pos, batch)[0] != tiny(["linear_filter"])(z, moved, batch)[0]


def test_linear_filter_has_no_hidden_layer():
    blk = InteractionBlock(hidden_channels=16, num_gaussians=10, filter_channels=8,
                           kind="linear_filter")  # fmt: skip
    assert blk.filter_hidden_channels == 0
    assert sum(p.numel() for p in blk.filter_network.parameters()) == 10 * 8 + 8
    assert "kind=linear_filter" in repr(blk)


def test_bad_kinds_are_refused():
    with pytest.raises(ValueError, match="block kind must be one of"):
        InteractionBlock(hidden_channels=4, num_gaussians=3, filter_channels=2, kind="gcn")
    with pytest.raises(ValueError, match="2 entries for 3"):
        SchNet(num_interactions=3, block_kinds=["cfconv", "atomwise"])
    assert set(BLOCK_KINDS) == {"cfconv", "linear_filter", "atomwise", "tabulated"}


def test_inference_convolves_in_place_with_the_training_arithmetic():
    """Without autograd the messages are multiplied and summed in a shared buffer: bit for bit
    the results of the autograd path, for the exact and the tabulated blocks."""
    exact = tiny(["cfconv", "cfconv"])
    z, pos, batch = molecules()
    for model in (exact, exact.tabulated(64)):
        with torch.enable_grad():
            want = model(z, pos, batch)
        with torch.no_grad():
            got = model(z, pos, batch)
        with torch.inference_mode():
            got2 = model(z, pos, batch)
        assert torch.equal(got, want.detach()) and torch.equal(got2, got)
