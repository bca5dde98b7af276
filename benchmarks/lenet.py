"""LeNet-300-100 and Caffe's LeNet-5 for MNIST, the classic pruning benchmarks.

Both take images ``[B, 1, 28, 28]`` and return logits ``[B, 10]``. They use plain ``nn.Conv2d``
/ ``nn.Linear`` / ``nn.Flatten`` modules with stable names, so a pruning engine can address a
layer by name (``"conv2"``, ``"fc1"``), and shrinking a layer (removing output channels or units
and the matching inputs of the next layer) only changes layer shapes: ``forward`` and ``repr``
read widths from the modules, never from constructor arguments.

Weights are initialised as Caffe's ``xavier`` filler does (uniform in ``+-sqrt(3 / fan_in)``,
``fan_in = in_channels * kernel_h * kernel_w``), biases as ``constant 0``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LeNet300100", "LeNet5Caffe", "caffe_xavier_"]


@torch.no_grad()
def caffe_xavier_(module: nn.Conv2d | nn.Linear) -> None:
    """Caffe's default ``xavier`` weight filler (FAN_IN) and zero bias, in place."""
    fan_in = module.weight[0].numel()
    bound = math.sqrt(3.0 / fan_in) if fan_in else 0.0
    module.weight.uniform_(-bound, bound)
    if module.bias is not None:
        module.bias.zero_()


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class LeNet300100(nn.Module):
    """Fully connected 784-300-100-10 with ReLU (266,610 parameters).

    Modules: ``flatten``, ``fc1`` (784->300), ``relu1``, ``fc2`` (300->100), ``relu2``,
    ``fc3`` (100->10). ``hidden`` builds a narrower (or wider) copy, e.g. to load a shrunk
    ``state_dict``.
    """

    def __init__(self, hidden: tuple[int, int] = (300, 100), num_classes: int = 10) -> None:
        super().__init__()
        h1, h2 = hidden
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, h1)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(h1, h2)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(h2, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every layer (Caffe xavier weights, zero biases)."""
        for layer in (self.fc1, self.fc2, self.fc3):
            caffe_xavier_(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        x = self.relu1(self.fc1(x))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)

    @property
    def widths(self) -> dict[str, list[int]]:
        """Output width of each layer, read from the current weight shapes."""
        return {"fc": [int(fc.weight.shape[0]) for fc in (self.fc1, self.fc2, self.fc3)]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fc={self.widths['fc']}, params={_num_params(self):,})"


class LeNet5Caffe(nn.Module):
    """Caffe's MNIST LeNet (``examples/mnist/lenet_train_test.prototxt``), 431,080 parameters.

    ``conv1`` (1->20, 5x5) -> ``pool1`` (max 2x2) -> ``conv2`` (20->50, 5x5) -> ``pool2``
    (max 2x2) -> ``flatten`` (50*4*4 = 800) -> ``fc1`` (800->500, Caffe ``ip1``) -> ``relu1`` ->
    ``fc2`` (500->10, ``ip2``). As in Caffe there is no nonlinearity after the convolutions.
    ``channels`` / ``hidden`` build a narrower (or wider) copy, e.g. to load a shrunk
    ``state_dict``.
    """

    def __init__(
        self, channels: tuple[int, int] = (20, 50), hidden: int = 500, num_classes: int = 10
    ) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every layer (Caffe xavier weights, zero biases)."""
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            caffe_xavier_(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.flatten(x)
        x = self.relu1(self.fc1(x))
        return self.fc2(x)

    @property
    def widths(self) -> dict[str, list[int]]:
        """Output width of each layer, read from the current weight shapes."""
        return {
            "conv": [int(c.weight.shape[0]) for c in (self.conv1, self.conv2)],
            "fc": [int(fc.weight.shape[0]) for fc in (self.fc1, self.fc2)],
        }

    def __repr__(self) -> str:
        w = self.widths
        return (
            f"{type(self).__name__}(conv={w['conv']}, fc={w['fc']}, params={_num_params(self):,})"
        )
