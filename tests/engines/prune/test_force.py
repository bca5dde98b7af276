"""Force regularisation toward low rank and the physical low-rank decomposition."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.prune import ForcePruner, weight_groups
from chemprune.engines.prune.force import force_directions
from chemprune.engines.prune.lowrank import (
    LowRankLinear,
    apply_low_rank,
    decompose,
    factorize_linear,
    low_rank_manifest,
    rank_for_energy,
)


@pytest.mark.parametrize("kind", ["l2", "l1"])
def test_force_equals_the_pairwise_sum_by_hand(kind):
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    w[3] = 0  # a zero row: no force on it, none from it
    got = force_directions(w, kind)
    n = [w[i] / w[i].norm() if w[i].norm() > 0 else None for i in range(5)]
    live = [i for i in range(5) if n[i] is not None]
    for i in range(5):
        if n[i] is None:
            assert bool((got[i] == 0).all())
            continue
        fs = [n[j] - n[i] for j in live if j != i]
        fs = [f / f.norm() for f in fs] if kind == "l1" else fs
        f = sum(f - (f @ n[i]) * n[i] for f in fs) / (len(live) - 1)
        torch.testing.assert_close(got[i], w[i].norm() * f)
        assert abs(float(got[i] @ n[i])) < 1e-5  # tangent: moves the direction, not the norm


def _energy_rank(w: torch.Tensor, energy: float = 0.9) -> int:
    return rank_for_energy(torch.linalg.svdvals(w.detach()), energy)


def test_force_alone_coordinates_filters_toward_low_rank():
    torch.manual_seed(0)
    layer = nn.Linear(12, 16)
    norms = layer.weight.detach().norm(dim=1).clone()
    start = _energy_rank(layer.weight)
    pruner = ForcePruner(groups=weight_groups(layer), sparsity=0.0, strength=1.0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        pruner.regularize(layer)
        opt.step()
    assert _energy_rank(layer.weight) < start <= 12
    # the force is tangent, so norms change only at second order in the step size
    torch.testing.assert_close(layer.weight.detach().norm(dim=1), norms, rtol=0.05, atol=0.0)


def test_force_during_training_lowers_the_rank_a_given_energy_needs():
    def run(strength: float) -> int:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        x = torch.randn(256, 8)
        y = torch.tanh(x @ torch.randn(8, 1))
        pruner = ForcePruner(groups=weight_groups(model)[:1], sparsity=0.0, strength=strength)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(300):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            pruner.regularize(model)
            opt.step()
        return _energy_rank(model[0].weight)

    assert run(0.05) < run(0.0)


def test_factorized_layer_is_the_truncated_svd_and_exact_at_full_rank():
    torch.manual_seed(0)
    layer = nn.Linear(6, 9)
    x = torch.randn(4, 6)
    full = factorize_linear(layer, 6)
    torch.testing.assert_close(full(x), layer(x), atol=1e-5, rtol=1e-5)
    two = factorize_linear(layer, 2)
    u, s, vh = torch.linalg.svd(layer.weight.detach())
    best = (u[:, :2] * s[:2]) @ vh[:2]
    torch.testing.assert_close(two.second.weight @ two.first.weight, best, atol=1e-5, rtol=1e-5)
    assert "in=6, rank=2, out=9" in repr(two)
    with pytest.raises(ValueError, match="rank must be in"):
        LowRankLinear(6, 9, 7)


def test_rank_for_energy():
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert rank_for_energy(s, 9 / 14) == 1
    assert rank_for_energy(s, 0.7) == 2
    assert rank_for_energy(s, 1.0) == 3
    with pytest.raises(ValueError, match="energy must be in"):
        rank_for_energy(s, 0.0)


def test_decompose_only_where_it_saves_and_the_manifest_rebuilds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    with torch.no_grad():  # a rank-3 first layer
        model[0].weight.copy_(torch.randn(16, 3) @ torch.randn(3, 16))
    x = torch.randn(5, 16)
    before = model(x)
    report = decompose(model, energy=0.999)
    assert report == {"0": (16, 3)}  # the 2-output layer at rank 2 would save nothing
    assert low_rank_manifest(model) == {"0": 3}
    torch.testing.assert_close(model(x), before, atol=1e-4, rtol=1e-4)
    fresh = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    apply_low_rank(fresh, low_rank_manifest(model)).load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), model(x))
    with pytest.raises(KeyError, match="no nn.Linear or nn.Conv2d named"):
        decompose(model, ranks={"9": 1})
    with pytest.raises(ValueError, match="either ranks or energy"):
        decompose(model)


def test_force_engine_refuses_channel_groups_and_bad_strength():
    from chemprune.engines.prune import channel_groups

    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="weight groups"):
        ForcePruner(groups=channel_groups(model, torch.randn(2, 4)), sparsity=0.5)
    with pytest.raises(ValueError, match="strength must be"):
        ForcePruner(groups=weight_groups(model), sparsity=0.5, strength=float("nan"))


def test_low_rank_schnet_saves_loads_exports_and_keeps_its_function(qm9_small, tmp_path):
    from chemprune.common.atomic import atomic_save
    from chemprune.deploy.runtime import with_runtime
    from chemprune.molecules.checkpoint import load_model, model_checkpoint
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.models.schnet import SchNet

    torch.manual_seed(0)
    m = SchNet(hidden_channels=32, filter_channels=16, num_interactions=2, num_gaussians=10).eval()
    b = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr).collate(list(range(10)))
    names = [f"interactions.{i}.{layer}" for i in range(2) for layer in ("f2out", "out")]
    groups = [g for g in weight_groups(m) if g.name in names]
    pruner = ForcePruner(groups=groups, sparsity=0.75)
    pruner.apply(m)
    projected = m(b.z, b.pos, b.batch)
    split = pruner.factorize(m)
    want = {n: 4 if n.endswith("f2out") else 8 for n in names}  # a quarter of ranks 16 and 32
    assert set(split) == set(names) and m.config()["low_rank"] == want
    torch.testing.assert_close(m(b.z, b.pos, b.batch), projected, atol=1e-5, rtol=1e-5)
    assert "'interactions.0.f2out': 4" in repr(m) and "rank=4" in repr(m.interactions[0])
    path = tmp_path / "lowrank.pt"
    atomic_save(model_checkpoint(m, target={"name": "gap", "unit": "eV"}), path)
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded.eval()(b.z, b.pos, b.batch), projected, atol=1e-5, rtol=1e-5)
    for runtime in ("torchscript", "export"):
        fast = with_runtime(loaded.eval(), runtime)
        torch.testing.assert_close(fast(b.z, b.pos, b.batch), projected, atol=1e-5, rtol=1e-5)
    assert "low_rank" not in SchNet(num_interactions=1).config()


def test_convolutions_split_into_basis_filters_and_a_1x1_mix():
    from benchmarks.lenet import LeNet5Caffe
    from chemprune.engines.prune.lowrank import LowRankConv2d, factorize_conv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    x = torch.randn(2, 4, 9, 9)
    full = factorize_conv2d(conv, 6)
    torch.testing.assert_close(full(x), conv(x), atol=1e-5, rtol=1e-5)
    model = LeNet5Caffe()
    with torch.no_grad():  # conv2's 50 filters spanned by 5 directions
        model.conv2.weight.copy_((torch.randn(50, 5) @ torch.randn(5, 500)).reshape(50, 20, 5, 5))
    images = torch.randn(3, 1, 28, 28)
    before = model(images)
    pruner = ForcePruner(groups=[g for g in weight_groups(model) if g.name == "conv2"],
                         sparsity=0.0)  # fmt: skip
    assert pruner.ranks_for_energy(model, 0.9999) == {"conv2": 5}
    pruner.project(model, {"conv2": 5})
    assert pruner.factorize(model) == {"conv2": (50, 5)}
    assert isinstance(model.conv2, LowRankConv2d) and model.conv2.first.kernel_size == (5, 5)
    torch.testing.assert_close(model(images), before, atol=1e-4, rtol=1e-4)
    fresh = apply_low_rank(LeNet5Caffe(), low_rank_manifest(model))
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(images), model(images))
