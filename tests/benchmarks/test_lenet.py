"""LeNet-300-100 and Caffe LeNet-5: parameter counts, shapes, names, repr, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmarks.lenet import LeNet5Caffe, LeNet300100


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts():
    assert _count(LeNet300100()) == 266_610
    assert _count(LeNet5Caffe()) == 431_080


@pytest.mark.parametrize("cls", [LeNet300100, LeNet5Caffe])
def test_output_shape_and_backward(cls):
    torch.manual_seed(0)
    model = cls()
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    assert out.shape == (3, 10)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_layer_shapes_match_caffe():
    m = LeNet5Caffe()
    assert m.conv1.weight.shape == (20, 1, 5, 5)
    assert m.conv2.weight.shape == (50, 20, 5, 5)
    assert m.fc1.weight.shape == (500, 800)
    assert m.fc2.weight.shape == (10, 500)
    m = LeNet300100()
    assert [m.fc1.weight.shape, m.fc2.weight.shape, m.fc3.weight.shape] == [
        (300, 784),
        (100, 300),
        (10, 100),
    ]


def test_stable_module_names():
    layers = {n: type(m) for n, m in LeNet5Caffe().named_modules() if n}
    assert layers["conv1"] is nn.Conv2d and layers["conv2"] is nn.Conv2d
    assert layers["fc1"] is nn.Linear and layers["fc2"] is nn.Linear
    assert layers["flatten"] is nn.Flatten
    layers = {n: type(m) for n, m in LeNet300100().named_modules() if n}
    assert {n for n, t in layers.items() if t is nn.Linear} == {"fc1", "fc2", "fc3"}
    assert layers["flatten"] is nn.Flatten
    assert list(LeNet300100().state_dict()) == [
        f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")
    ]


def test_repr_shows_widths():
    assert repr(LeNet5Caffe()) == "LeNet5Caffe(conv=[20, 50], fc=[500, 10], params=431,080)"
    assert repr(LeNet300100()) == "LeNet300100(fc=[300, 100, 10], params=266,610)"


def test_shrunk_model_repr_and_forward():
    """Replacing layers by narrower ones (what shrinking does) is reflected everywhere."""
    m = LeNet5Caffe()
    keep = torch.arange(0, 50, 5)  # 10 of conv2's 50 channels
    with torch.no_grad():
        conv2 = nn.Conv2d(20, 10, 5)
        conv2.weight.copy_(m.conv2.weight[keep])
        conv2.bias.copy_(m.conv2.bias[keep])
        cols = (keep[:, None] * 16 + torch.arange(16)).reshape(-1)
        fc1 = nn.Linear(160, 500)
        fc1.weight.copy_(m.fc1.weight[:, cols])
        fc1.bias.copy_(m.fc1.bias)
    m.conv2, m.fc1 = conv2, fc1
    assert (
        repr(m) == "LeNet5Caffe(conv=[20, 10], fc=[500, 10], params=91,040)"
    )  # 520 + 5,010 + 80,500 + 5,010
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)

    # a model built with the shrunk widths loads the shrunk state_dict
    again = LeNet5Caffe(channels=(20, 10))
    again.load_state_dict(m.state_dict())
    assert repr(again) == repr(m)

    small = LeNet300100(hidden=(30, 10))
    assert repr(small) == f"LeNet300100(fc=[30, 10, 10], params={_count(small):,})"
    assert small(torch.rand(4, 1, 28, 28)).shape == (4, 10)


@pytest.mark.parametrize("cls", [LeNet300100, LeNet5Caffe])
def test_reset_parameters_caffe_xavier(cls):
    torch.manual_seed(0)
    model = cls()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    model.reset_parameters()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            bound = math.sqrt(3.0 / module.weight[0].numel())
            assert module.weight.abs().max() <= bound, name
            assert module.weight.abs().max() > 0.5 * bound, name
            assert torch.all(module.bias == 0), name
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in after if k.endswith("weight"))
