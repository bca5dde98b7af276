"""Class-discriminant scores: textbook values, hierarchical labels, the CDC engine."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from chemprune.engines.distill import DiscriminantFeatureLoss
from chemprune.engines.prune import PRUNERS, channel_groups, shrink
from chemprune.engines.prune.discriminant import (
    ClassStats,
    discriminant_subspace,
    fdr,
    hierarchical_labels,
    one_vs_rest,
    snr,
    symmetric_divergence,
    t_statistic,
)


def two_class_stats() -> ClassStats:
    # one channel; class 0: values 1, 3 (mean 2, var 2); class 1: 5, 7, 9 (mean 7, var 4)
    st = ClassStats(2, 1)
    st.add(torch.tensor([[1.0], [3.0], [5.0], [7.0], [9.0]]), torch.tensor([0, 0, 1, 1, 1]))
    return st


def test_moments_and_one_vs_rest():
    n, mean, var = two_class_stats().moments()
    assert n.flatten().tolist() == [2, 3]
    assert mean.flatten().tolist() == [2, 7] and var.flatten().tolist() == [2, 4]
    m = one_vs_rest(two_class_stats())  # with two classes "rest" is the other class
    assert m["mu_out"].flatten().tolist() == [7, 2] and m["var_out"].flatten().tolist() == [4, 2]


def test_seed_functions_give_textbook_values():
    m = one_vs_rest(two_class_stats())
    d = 5.0
    assert snr(m)[0, 0].item() == pytest.approx(d / (math.sqrt(2) + 2), rel=1e-6)
    assert fdr(m)[0, 0].item() == pytest.approx(d**2 / 6, rel=1e-6)
    sym = 0.5 * (2 / 4 + 4 / 2) - 1 + 0.5 * d**2 * (1 / 2 + 1 / 4)
    assert symmetric_divergence(m)[0, 0].item() == pytest.approx(sym, rel=1e-6)
    assert t_statistic(m)[0, 0].item() == pytest.approx(d / math.sqrt(2 / 2 + 4 / 3), rel=1e-6)
    # symmetric in the two classes
    assert symmetric_divergence(m)[1, 0].item() == pytest.approx(sym, rel=1e-6)


def test_identical_classes_score_zero():
    st = ClassStats(2, 1)
    st.add(torch.tensor([[1.0], [3.0], [1.0], [3.0]]), torch.tensor([0, 0, 1, 1]))
    m = one_vs_rest(st)
    for f in (snr, fdr, symmetric_divergence, t_statistic):
        assert f(m).abs().max().item() == pytest.approx(0.0, abs=1e-6)


def test_hierarchical_labels_partition_by_confusion():
    conf = torch.eye(4) * 90
    conf[0, 1] = conf[1, 0] = 10  # 0 and 1 are confused with each other, 2 and 3 too
    conf[2, 3] = conf[3, 2] = 8
    assert hierarchical_labels(conf.tolist(), 2) == [0, 0, 1, 1]
    labels = hierarchical_labels(conf.tolist(), 3)
    assert labels == [0, 0, 1, 2]  # the most confused pair (0, 1) merges first
    assert hierarchical_labels(conf.tolist(), 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_coarse"):
        hierarchical_labels(conf.tolist(), 5)


def test_discriminant_subspace_finds_the_separating_direction():
    torch.manual_seed(0)
    labels = torch.arange(200) % 2
    f = torch.randn(200, 3)
    f[:, 1] += 4 * labels  # only channel 1 separates the classes
    w = discriminant_subspace(f, labels, 1)
    assert w.shape == (3, 1) and abs(w[1, 0].item()) > 0.95
    loss = DiscriminantFeatureLoss(student_dim=3, teacher_dim=3, subspace=w)
    teacher = f[:4]
    moved = teacher.clone()
    moved[:, 0] += 5.0  # a change outside the discriminant direction barely counts
    assert float(loss(moved, teacher)) < 0.05 * float(((moved - teacher) ** 2).mean())


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_cdc_keeps_the_discriminative_channels_and_shrinks_for_real():
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # channels 0-2 read the class feature x0, channels 3-5 noise x1..x3
        net.fc1.weight.zero_()
        net.fc1.weight[:3, 0] = torch.tensor([1.0, 2.0, 3.0])
        net.fc1.weight[3:, 1:] = torch.eye(3)
        net.fc1.bias.fill_(5.0)
    x = torch.randn(300, 4)
    y = torch.arange(300) % 2
    x[:, 0] += 3 * y
    groups = [g for g in channel_groups(net, x[:2]) if g.name == "fc1"]
    pruner = PRUNERS.get("cdc")(groups=groups, sparsity=0.5, num_classes=2)
    pruner.observe(net, x[:150], y[:150])
    pruner.observe(net, x[150:], y[150:])  # statistics accumulate over batches
    masks = pruner.apply(net)
    assert masks["fc1.weight"][:, 0].tolist() == [1, 1, 1, 0, 0, 0]
    before = net(x)
    shrink(net, groups)
    assert net.fc1.out_features == 3
    torch.testing.assert_close(net(x), before)


def test_cdc_bad_inputs():
    net = Net()
    groups = channel_groups(net, torch.randn(2, 4))
    with pytest.raises(ValueError, match="unknown discriminant"):
        PRUNERS.get("cdc")(groups=groups, sparsity=0.5, function="gini")
    pruner = PRUNERS.get("cdc")(groups=groups, sparsity=0.5, num_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        pruner.observe(net, torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="coarse"):
        PRUNERS.get("cdc")(groups=groups, sparsity=0.5, num_classes=2, coarse_groups=1)
