import pytest
import torch

from chemprune.engines.prune import MagnitudePruner, Schedule, weight_groups
from tests.engines.prune.conftest import tiny_mlp


def test_cubic_ramp_values_and_due_steps():
    s = Schedule(begin=10, end=110, every=25, power=3)
    assert s(0, 0.8) == 0.0 and s(10, 0.8) == 0.0
    assert s(60, 0.8) == pytest.approx(0.8 * (1 - 0.5**3))
    assert s(110, 0.8) == s(500, 0.8) == 0.8
    assert [k for k in range(0, 200) if s.due(k)] == [10, 35, 60, 85, 110]
    one_shot = Schedule(begin=5)
    assert [k for k in range(20) if one_shot.due(k)] == [5] and one_shot(5, 0.3) == 0.3


def test_iterative_magnitude_through_step_hook():
    torch.manual_seed(0)
    model = tiny_mlp()
    pruner = MagnitudePruner(
        groups=weight_groups(model), sparsity=0.9, schedule=Schedule(begin=0, end=40, every=10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 10), torch.randn(32, 3)
    seen = []
    for step in range(50):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if pruner.step(model, step):
            zeros = sum(int((model[i].weight == 0).sum()) for i in (0, 2, 4))
            seen.append(round(zeros / 312, 2))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.9, abs=0.01)
    assert len(seen) == 5 and seen[0] == 0.0
