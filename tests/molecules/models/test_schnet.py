"""SchNet: shapes, invariances, per-block widths, radius graph, state round-trips."""

from __future__ import annotations

import math

import pytest
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.graph import full_edge_index, radius_pairs
from chemprune.molecules.models.schnet import SchNet


def tiny(**kw) -> SchNet:
    torch.manual_seed(0)
    args = dict(
        hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10, cutoff=4.0
    )
    args.update(kw)
    return SchNet(**args)


@pytest.fixture
def batch(qm9_small):
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    return ms.collate(list(range(40, 60)))


def test_radius_pairs_match_brute_force(batch):
    pairs = radius_pairs(batch.pos, batch.batch, 3.0)
    d = torch.cdist(batch.pos, batch.pos)
    same = batch.batch[:, None] == batch.batch[None, :]
    want = ((d < 3.0) & same).triu(1).nonzero().T
    got = pairs[:, torch.argsort(pairs[0] * 10_000 + pairs[1])]
    assert torch.equal(got, want)
    assert full_edge_index(pairs).shape[1] == 2 * pairs.shape[1]


def test_forward_shape_and_invariances(batch):
    m = tiny().eval()
    out = m(batch.z, batch.pos, batch.batch)
    assert out.shape == (20,)
    # rotation + translation
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1)))
    rot = m(batch.z, batch.pos @ q.T + torch.tensor([1.0, -2.0, 3.0]), batch.batch)
    torch.testing.assert_close(rot, out, atol=1e-4, rtol=1e-4)
    # permutation of the atoms inside each molecule
    perm = torch.cat([torch.nonzero(batch.batch == k).flatten().flip(0) for k in range(20)])
    torch.testing.assert_close(
        m(batch.z[perm], batch.pos[perm], batch.batch[perm]), out, atol=1e-4, rtol=1e-4
    )


def test_per_block_widths_repr_and_config_round_trip(batch):
    m = tiny(
        filter_channels=[8, 3],
        filter_hidden_channels=[5, 4],
        readout="mean",
        mean=2.0,
        std=0.5,
        atomref=[0.0, 1.0, 0, 0, 0, 0, 2.0],
    )
    assert m.filter_channels == [8, 3]
    assert m.interactions[1].filter_network.lin2.weight.shape == (3, 4)
    assert m.interactions[1].in2f.weight.shape == (3, 16)
    assert m.interactions[1].f2out.weight.shape == (16, 3)
    assert "filter_channels=[8, 3]" in repr(m) and "filters=3" in repr(m.interactions[1])
    clone = SchNet.from_config(m.config())
    clone.load_state_dict(m.state_dict())
    torch.testing.assert_close(
        clone(batch.z, batch.pos, batch.batch), m(batch.z, batch.pos, batch.batch)
    )
    with pytest.raises(ValueError, match="unknown SchNet config keys"):
        SchNet.from_config({**m.config(), "dropout": 0.1})


def test_standardisation_atomref_and_readout():
    m = tiny(mean=1.5, std=2.0, atomref=[0.0, 10.0])
    for p in m.lin2.parameters():
        torch.nn.init.zeros_(p)  # network output 0 -> prediction is mean + atomref per atom
    z = torch.tensor([1, 1, 6, 1])
    pos = torch.tensor([[0, 0, 0], [0.7, 0, 0], [0, 0, 0], [1.1, 0, 0]], dtype=torch.float)
    batch = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(m(z, pos, batch), torch.tensor([2 * 11.5, 1.5 + 11.5]))
    mean_model = tiny(readout="mean", mean=1.5)
    for p in mean_model.lin2.parameters():
        torch.nn.init.zeros_(p)
    torch.testing.assert_close(mean_model(z, pos, batch), torch.tensor([1.5, 1.5]))


def test_isolated_atoms_and_far_pairs_contribute_nothing_through_filters():
    m = tiny().eval()
    z = torch.tensor([6, 8])
    near = m(z, torch.tensor([[0.0, 0, 0], [3.9999, 0, 0]]))
    far = m(z, torch.tensor([[0.0, 0, 0], [10.0, 0, 0]]))
    torch.testing.assert_close(near, far, atol=1e-5, rtol=1e-5)  # cosine cutoff is smooth at r_c


def test_bad_arguments():
    with pytest.raises(ValueError, match="readout"):
        tiny(readout="max")
    with pytest.raises(ValueError, match="3 entries for 2"):
        tiny(filter_channels=[4, 4, 4])
    m = tiny()
    with pytest.raises(ValueError, match="atomic numbers"):
        m(torch.tensor([0, 1]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected z"):
        m(torch.tensor([1, 1]), torch.zeros(3, 3))


def test_state_dict_round_trip_through_file(tmp_path, batch):
    m = tiny(filter_channels=[8, 2])
    torch.save(m.state_dict(), tmp_path / "m.pt")
    clone = tiny(filter_channels=[8, 2])
    clone.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    torch.testing.assert_close(
        clone(batch.z, batch.pos, batch.batch), m(batch.z, batch.pos, batch.batch)
    )
    assert math.isclose(
        sum(p.numel() for p in clone.parameters()), sum(p.numel() for p in m.parameters())
    )
