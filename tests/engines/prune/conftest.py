import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.bn1 = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(8 * 3 * 3, 12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        return self.fc2(torch.relu(self.fc1(self.flatten(x))))


def tiny_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return tiny_mlp()


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    m = TinyCNN()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.bias.uniform_(-0.5, 0.5)
    return m.eval()
