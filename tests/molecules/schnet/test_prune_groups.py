import pytest
import torch

from chemprune.engines.prune import MagnitudePruner, count_parameters, shrink
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.prune_groups import schnet_groups


@pytest.fixture
def model_and_batch(qm9_small):
    torch.manual_seed(0)
    m = SchNet(hidden_channels=16, filter_channels=12, num_interactions=3, num_gaussians=10).eval()
    b = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr).collate(list(range(30)))
    return m, b


@pytest.mark.parametrize("kind", ["filter", "filter_hidden"])
def test_shrunk_schnet_equals_masked_and_rebuilds_from_config(model_and_batch, kind):
    m, b = model_and_batch
    groups = schnet_groups(m, kind, blocks=[0, 2])
    MagnitudePruner(groups=groups, sparsity=0.5, scope="layer").apply(m)
    masked = m(b.z, b.pos, b.batch)
    shrink(m, groups)
    torch.testing.assert_close(m(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    cfg = m.config()
    key = "filter_channels" if kind == "filter" else "filter_hidden_channels"
    assert cfg[key] == [6, 12, 6]
    rebuilt = SchNet.from_config(cfg)
    rebuilt.load_state_dict(m.state_dict())
    torch.testing.assert_close(rebuilt.eval()(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    assert "filter_channels=[6, 12, 6]" in repr(m) or kind == "filter_hidden"


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("atom_basis", {"hidden_channels": 8, "head_channels": 8, "filter_channels": [12] * 3}),
        ("interaction", {"hidden_channels": 16, "interaction_channels": [8, 16, 8]}),
        (
            "filter+atom_basis+interaction",
            {
                "hidden_channels": 8,
                "filter_channels": [6, 12, 6],
                "interaction_channels": [8, 16, 8],
            },
        ),
    ],
)
def test_atom_basis_and_interaction_widths_shrink_exactly(model_and_batch, kind, expect):
    m, b = model_and_batch
    groups = schnet_groups(m, kind, blocks=[0, 2])
    assert sum(g.name == "atom_basis" for g in groups) == ("atom_basis" in kind)
    MagnitudePruner(groups=groups, sparsity=0.5, scope="layer").apply(m)
    masked = m(b.z, b.pos, b.batch)
    params = count_parameters(m)[0]
    shrink(m, groups)
    torch.testing.assert_close(m(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    cfg = m.config()
    assert {k: cfg[k] for k in expect} == expect
    assert count_parameters(m)[0] < params
    rebuilt = SchNet.from_config(cfg)
    rebuilt.load_state_dict(m.state_dict())
    torch.testing.assert_close(rebuilt.eval()(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)


def test_weight_groups_and_errors(model_and_batch):
    m, _ = model_and_batch
    names = {g.name for g in schnet_groups(m, "weight", blocks=[1])}
    assert "interactions.1.filter_network.lin2" in names and "lin1" in names
    assert not any(n.startswith("interactions.0") for n in names)
    with pytest.raises(ValueError, match="blocks \\[5\\] do not exist"):
        schnet_groups(m, "filter", blocks=[5])
    with pytest.raises(ValueError, match="unknown SchNet group kind"):
        schnet_groups(m, "atoms")
    with pytest.raises(ValueError, match="unknown SchNet group kind"):
        schnet_groups(m, "filter+filter")
    with pytest.raises(TypeError, match="expected a chemprune SchNet"):
        schnet_groups(torch.nn.Linear(2, 2))
    assert count_parameters(m)[0] == sum(p.numel() for p in m.parameters())


def test_kernel_groups_prune_filters_and_hidden_units_together(model_and_batch):
    m, b = model_and_batch
    m.interactions[1].filter_network = type(m.interactions[1].filter_network)(
        num_gaussians=10, hidden_channels=20, filter_channels=12
    )  # the two halves of one kernel may have different widths
    m.eval()
    groups = schnet_groups(m, "kernel")
    assert sorted({g.tags[0] for g in groups}) == ["filter", "filter_hidden"]
    assert len(groups) == 6
    MagnitudePruner(groups=groups, sparsity=0.75, scope="layer").apply(m)
    masked = m(b.z, b.pos, b.batch)
    shrink(m, groups)
    torch.testing.assert_close(m(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    cfg = m.config()
    assert cfg["filter_channels"] == [3, 3, 3]
    assert cfg["filter_hidden_channels"] == [3, 5, 3]  # 75% of both parts of every block
    rebuilt = SchNet.from_config(cfg)
    rebuilt.load_state_dict(m.state_dict())
    torch.testing.assert_close(rebuilt.eval()(b.z, b.pos, b.batch), masked, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="each width once"):
        schnet_groups(m, "kernel+filter")
    assert len(schnet_groups(m, "kernel+atom_basis")) == 7
