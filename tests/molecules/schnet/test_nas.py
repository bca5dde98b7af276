from __future__ import annotations

import pytest
import torch

from chemprune.engines.nas import Darts, mixed_ops
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.nas import DEFAULT_CANDIDATES, SchNetSupernet, parse_candidate


def molecules():
    torch.manual_seed(1)
    z = torch.tensor([6, 1, 1, 1, 8, 1, 7, 1, 1])
    pos = torch.randn(9, 3) * 1.2
    return z, pos, torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])


def supernet(**kw):
    torch.manual_seed(0)
    return SchNetSupernet(
        hidden_channels=16, num_interactions=3, num_gaussians=10, cutoff=4.0, **kw
    )


def set_choice(net, choices):
    with torch.no_grad():
        for edge, name in zip(net.interactions, choices, strict=True):
            edge.alpha.fill_(-1e9)
            edge.alpha[edge.names.index(name)] = 0.0


def test_candidates_parse():
    assert parse_candidate("cf64", 128) == ("cfconv", 64)
    assert parse_candidate("linear32", 128) == ("linear_filter", 32)
    assert parse_candidate("atomwise", 128) == ("atomwise", 128)
    assert parse_candidate("skip", 128) == ("skip", 0)
    for bad in ("cf", "conv3", "cf0", "linear"):
        with pytest.raises(ValueError, match="candidate"):
            parse_candidate(bad, 16)
    assert DEFAULT_CANDIDATES == (
        "cf16", "cf32", "cf64", "cf128", "linear64", "atomwise", "skip", "none"
    )  # fmt: skip


def test_derive_equals_the_supernet_restricted_to_the_chosen_ops():
    net = supernet(candidates=("cf8", "cf4", "linear8", "atomwise", "skip", "none"))
    z, pos, batch = molecules()
    set_choice(net, ["cf4", "skip", "linear8"])
    restricted = net(z, pos, batch)
    model = net.derive()
    assert type(model) is SchNet and not list(mixed_ops(model))
    assert model.block_kinds == ["cfconv", "linear_filter"] and model.filter_channels == [4, 8]
    assert model.derived_from == [0, 2]
    torch.testing.assert_close(model(z, pos, batch), restricted, atol=1e-5, rtol=1e-5)
    rebuilt = SchNet.from_config(model.config())  # an ordinary, reloadable architecture
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(z, pos, batch), restricted, atol=1e-5, rtol=1e-5)


def test_none_is_the_zero_output_and_never_derived():
    net = supernet(candidates=("cf8", "skip", "none"))
    z, pos, batch = molecules()
    with torch.no_grad():
        for edge in net.interactions:
            edge.alpha.copy_(torch.tensor([0.0, -1.0, 5.0]))
    assert [e.chosen() for e in net.interactions] == ["cf8"] * 3
    set_choice(net, ["none", "none", "none"])
    h = net.atom_features(z, pos, batch)
    assert torch.count_nonzero(h) == 0


def test_all_skip_is_a_clear_error():
    net = supernet(candidates=("cf8", "skip"))
    set_choice(net, ["skip"] * 3)
    with pytest.raises(ValueError, match="collapsed"):
        net.derive()


def test_measured_costs_order_the_candidates():
    net = supernet()
    costs = net.measure_costs(*molecules())
    assert costs["skip"] == costs["none"] == 0
    assert costs["cf16"] < costs["cf32"] < costs["cf64"] < costs["cf128"]
    assert costs["linear64"] < costs["cf64"]
    assert all(e.ops["cf64"].cost == costs["cf64"] for e in net.interactions)


def test_like_copies_the_teachers_basis_and_head():
    torch.manual_seed(0)
    teacher = SchNet(hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10,
                     cutoff=4.0, mean=-1.5, std=0.3)  # fmt: skip
    net = SchNetSupernet.like(teacher, candidates=("cf8", "skip"))
    assert len(net.interactions) == 2 and float(net.std) == pytest.approx(0.3)
    assert torch.equal(net.embedding.weight, teacher.embedding.weight)


def test_a_search_step_runs_on_the_supernet():
    net = supernet(candidates=("cf8", "atomwise", "skip", "none"))
    z, pos, batch = molecules()
    y = torch.tensor([0.5, -0.2, 0.1])

    def loss(model, b):
        return ((model(*b[:3]) - b[3]) ** 2).mean()

    search = Darts(model=net, loss=loss, lr=0.01)
    stats = search.train_step((z, pos, batch, y), (z, pos, batch, y))
    assert stats["step"] == 1
    assert "cf8=" in repr(net)


def test_block_wise_distillation_is_zero_for_the_teachers_own_blocks():
    from chemprune.molecules.data.batching import MoleculeBatch
    from chemprune.molecules.schnet.nas_distill import schnet_search_loss

    torch.manual_seed(0)
    teacher = SchNet(hidden_channels=16, filter_channels=8, num_interactions=3, num_gaussians=10,
                     cutoff=4.0)  # fmt: skip
    net = SchNetSupernet.like(teacher, candidates=("cf8", "atomwise", "skip", "none"))
    with torch.no_grad():
        for edge, blk in zip(net.interactions, teacher.interactions, strict=True):
            edge.ops["cf8"].load_state_dict(blk.state_dict())
    z, pos, batch = molecules()
    b = MoleculeBatch(z=z, pos=pos, batch=batch, y=torch.zeros(3), index=torch.arange(3))
    loss, distill = schnet_search_loss(student=net, teacher=teacher, mode="features")
    set_choice(net, ["cf8"] * 3)
    with torch.no_grad():
        task = (teacher(z, pos, batch) ** 2).mean()
    torch.testing.assert_close(loss(net, b), task, atol=1e-6, rtol=1e-5)  # KD terms are zero
    with torch.no_grad():
        for edge in net.interactions:
            edge.alpha.zero_()  # mixed: the blocks no longer produce the teacher's stream
    _, terms = distill(z, pos, batch, num_molecules=3)
    assert float(terms["kd_features"]) > 1e-4
    grads = torch.autograd.grad(loss(net, b), [e.alpha for e in net.interactions])
    assert all(torch.count_nonzero(g) > 0 for g in grads)
    distill.close()
    with pytest.raises(ValueError, match="needs a teacher"):
        schnet_search_loss(student=net, mode="output")
