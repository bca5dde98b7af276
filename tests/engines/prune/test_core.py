"""Masks, groups, shrink and accounting on tiny MLP/CNN models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chemprune.engines.prune import (
    MagnitudePruner,
    apply_masks,
    channel_groups,
    count_parameters,
    get_masks,
    input_groups,
    load_masked_state_dict,
    resize_to,
    shape_manifest,
    shrink,
    summarize,
    weight_groups,
)
from tests.engines.prune.conftest import TinyCNN, tiny_mlp


def test_masks_stay_zero_through_training(mlp):
    pruner = MagnitudePruner(groups=weight_groups(mlp), sparsity=0.7)
    masks = pruner.apply(mlp)
    opt = torch.optim.SGD(mlp.parameters(), lr=0.5, momentum=0.9)
    x, y = torch.randn(64, 10), torch.randn(64, 3)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.mse_loss(mlp(x), y).backward()
        opt.step()
    for name, m in masks.items():
        w = mlp.get_submodule(name.rsplit(".", 1)[0]).weight
        assert torch.all(w[m == 0] == 0)
    total, nonzero = count_parameters(mlp)
    weights = sum(mlp[i].weight.numel() for i in (0, 2, 4))
    assert nonzero == total - round(0.7 * weights)


def test_masked_state_dict_round_trip(mlp, tmp_path):
    MagnitudePruner(groups=weight_groups(mlp), sparsity=0.5).apply(mlp)
    torch.save(mlp.state_dict(), tmp_path / "m.pt")
    fresh = tiny_mlp()
    load_masked_state_dict(fresh, torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(5, 10)
    torch.testing.assert_close(fresh(x), mlp(x))
    assert set(get_masks(fresh)) == set(get_masks(mlp))


def test_channel_groups_found_through_bn_pool_and_flatten(cnn):
    groups = {g.name: g for g in channel_groups(cnn, torch.randn(2, 1, 12, 12))}
    assert set(groups) == {"conv1", "conv2", "fc1"}  # fc2 feeds the output: not prunable
    slots = {s.qualname: s for s in groups["conv2"].slots}
    assert slots["fc1.weight"].repeat == 9 and slots["fc1.weight"].dim == 1
    assert {s.qualname for s in groups["conv1"].mask_slots} == {
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.bias",
    }
    assert "bn1.running_mean" in {s.qualname for s in groups["conv1"].slots}


def test_residual_and_non_zero_activation_are_not_grouped():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.c = nn.Linear(4, 5)
            self.d = nn.Linear(5, 2)

        def forward(self, x):
            h = x + self.a(x)  # residual: a's channels are tied to x
            return self.d(torch.sigmoid(self.c(self.b(h))))  # sigmoid(0) != 0

    names = {g.name for g in channel_groups(Res(), torch.randn(2, 4))}
    assert names == {"b"}


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_shrink_equals_masked_outputs_and_reloads(model_name, request, tmp_path):
    model = request.getfixturevalue(model_name)
    x = torch.randn(7, 10) if model_name == "mlp" else torch.randn(7, 1, 12, 12)
    groups = channel_groups(model, x)
    MagnitudePruner(groups=groups, sparsity=0.5, scope="layer").apply(model)
    masked = model(x)
    before = count_parameters(model)[0]
    report = shrink(model, groups)
    assert all(after == (size + 1) // 2 or after == size // 2 for size, after in report.values())
    torch.testing.assert_close(model(x), masked, atol=1e-5, rtol=1e-5)
    assert count_parameters(model)[0] < before
    assert not get_masks(model)
    # saved shrunk model loads into a freshly built (full-size) architecture
    torch.save(
        {"shapes": shape_manifest(model), "state_dict": model.state_dict()}, tmp_path / "s.pt"
    )
    blob = torch.load(tmp_path / "s.pt", weights_only=True)
    fresh = (tiny_mlp() if model_name == "mlp" else TinyCNN()).eval()
    resize_to(fresh, blob["shapes"]).load_state_dict(blob["state_dict"])
    torch.testing.assert_close(fresh(x), masked, atol=1e-5, rtol=1e-5)
    if model_name == "cnn":
        assert fresh.conv2.out_channels == 4 and fresh.fc1.in_features == 36


def test_shrink_refuses_to_empty_a_layer(mlp):
    groups = channel_groups(mlp, torch.randn(2, 10))
    g = groups[0]
    keep = torch.zeros(g.size, dtype=torch.bool)
    from chemprune.engines.prune.masks import group_masks

    apply_masks(mlp, group_masks(mlp, {g: keep}))
    with pytest.raises(ValueError, match="every unit is pruned"):
        shrink(mlp, groups)


def test_input_groups_mask_columns(mlp):
    (g,) = input_groups(mlp, ["0"])
    assert g.size == 10 and g.kind == "input"
    MagnitudePruner(groups=[g], sparsity=0.3).apply(mlp)
    cols = (mlp[0].weight != 0).any(dim=0)
    assert int(cols.sum()) == 7
    with pytest.raises(TypeError, match="not a Linear or Conv"):
        input_groups(mlp, ["1"])


def test_accounting_counts_macs(cnn):
    x = torch.randn(2, 1, 12, 12)
    dense = summarize(cnn, lambda m: m(x))
    conv1 = next(layer for layer in dense["layers"] if layer["name"] == "conv1")
    assert conv1["macs"] == 2 * 10 * 10 * 6 * 9
    MagnitudePruner(groups=weight_groups(cnn), sparsity=0.8, scope="layer").apply(cnn)
    sparse = summarize(cnn, lambda m: m(x))
    assert sparse["effective_macs"] == pytest.approx(0.2 * dense["macs"], rel=0.02)
    assert sparse["params"] == dense["params"] and sparse["compression"] > 2.5


def test_global_vs_layer_scope(mlp):
    groups = weight_groups(mlp)
    with torch.no_grad():
        mlp[4].weight.mul_(100.0)  # last layer dominates magnitudes
    MagnitudePruner(groups=groups, sparsity=0.5, scope="global").apply(mlp)
    dens = {i: float((mlp[i].weight != 0).float().mean()) for i in (0, 2, 4)}
    assert dens[4] == 1.0 and dens[0] < 1.0 and dens[2] < 1.0
    assert sum(int((mlp[i].weight == 0).sum()) for i in (0, 2, 4)) == 156  # 50% of 312
    torch.manual_seed(0)
    m2 = tiny_mlp()
    MagnitudePruner(groups=weight_groups(m2), sparsity=0.5, scope="layer").apply(m2)
    assert all(abs(float((m2[i].weight != 0).float().mean()) - 0.5) < 0.02 for i in (0, 2, 4))
