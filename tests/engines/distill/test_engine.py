"""The distillation engine on tiny MLPs: formulas, hooks, training."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chemprune.engines.distill import Distiller, FeatureCapture, SoftTargetLoss, soft_target_kl


def mlp(hidden: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, 5))


def kl_to_teacher(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(soft_target_kl(student(x), teacher(x), 1.0).mean())


def agreement(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((student(x).argmax(1) == teacher(x).argmax(1)).float().mean())


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_temperature_gradient_matches_the_closed_form(temperature):
    torch.manual_seed(0)
    s = torch.randn(6, 11, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, 11, dtype=torch.float64)
    loss = SoftTargetLoss(temperature=temperature, reduction="sum")
    loss(s, t).backward()
    expected = temperature * (
        torch.softmax(s.detach() / temperature, -1) - torch.softmax(t / temperature, -1)
    )
    torch.testing.assert_close(s.grad, expected.float().double(), atol=1e-5, rtol=1e-4)


def test_value_matches_the_manual_formula_with_gold_labels_and_padding():
    torch.manual_seed(1)
    s, t = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    y = torch.randint(0, 7, (3, 4))
    y[0, 3] = y[2, 1] = 0  # padding
    T, a = 3.0, 0.3
    got = SoftTargetLoss(temperature=T, alpha=a, ignore_index=0)(s, t, y)
    rows_s, rows_t, rows_y = s.reshape(-1, 7), t.reshape(-1, 7), y.reshape(-1)
    keep = rows_y != 0
    p_t = torch.softmax(rows_t / T, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(rows_s / T, -1))).sum(-1) * T * T
    ce = -torch.log_softmax(rows_s, -1).gather(1, rows_y[:, None])[:, 0]
    manual = ((1 - a) * ce + a * kl)[keep].mean()
    torch.testing.assert_close(got, manual)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
    ],
)
def test_bad_options_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        SoftTargetLoss(**kw)
    with pytest.raises(ValueError, match=match):
        Distiller(student=mlp(4, 0), teacher=mlp(8, 1), **kw)


def test_mixing_needs_gold_labels():
    with pytest.raises(ValueError, match="pass target"):
        SoftTargetLoss(alpha=0.5)(torch.randn(2, 3), torch.randn(2, 3))


def test_hooks_capture_the_right_tensors_and_go_away():
    model = mlp(8, 0)
    x = torch.randn(4, 10)
    with FeatureCapture(model, ["0", "1"]) as cap:
        out = model(x)
        h = torch.relu(model[0](x))
        torch.testing.assert_close(cap.features["1"], h)
        torch.testing.assert_close(cap.features["0"], model[0](x))
        assert cap.features["1"].requires_grad  # in the graph: feature losses train the model
        torch.testing.assert_close(model[2](cap.features["1"]), out)
    cap.clear()
    model(x)
    assert cap.features == {}
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    wrapper = nn.ModuleDict({"attn": attn})
    q = torch.randn(2, 3, 8)
    with FeatureCapture(wrapper, ["attn"], detach=True) as cap:
        out, _ = attn(q, q, q)
        torch.testing.assert_close(cap.features["attn"], out.detach())  # first of the tuple
        assert not cap.features["attn"].requires_grad
    with pytest.raises(ValueError, match="no submodule 'body'"):
        FeatureCapture(model, ["body"])


def test_distilled_student_matches_the_teacher_better():
    teacher, student = mlp(64, 0), mlp(8, 1)
    torch.manual_seed(2)
    x_train, x_test = torch.randn(512, 10), torch.randn(256, 10)
    before = kl_to_teacher(student, teacher, x_test)
    agree_before = agreement(student, teacher, x_test)
    frozen = copy.deepcopy(teacher.state_dict())
    distiller = Distiller(student=student, teacher=teacher, temperature=2.0, alpha=1.0, lr=1e-2)
    for _ in range(15):
        for i in range(0, 512, 64):
            stats = distiller.train_step(x_train[i : i + 64])
    after = kl_to_teacher(student, teacher, x_test)
    assert after < 0.2 * before, (before, after)
    assert stats["loss"] == pytest.approx(stats["soft"]) and stats["features"] == 0.0
    for k, v in teacher.state_dict().items():  # the teacher never moves
        assert torch.equal(v, frozen[k])
    agree = agreement(student, teacher, x_test)
    assert agree > max(0.7, agree_before + 0.3), (agree_before, agree)


def test_alpha_zero_is_plain_cross_entropy_training():
    teacher = mlp(16, 0)
    a, b = mlp(8, 1), mlp(8, 1)
    torch.manual_seed(3)
    x, y = torch.randn(64, 10), torch.randint(0, 5, (64,))
    distiller = Distiller(student=a, teacher=teacher, alpha=0.0, lr=1e-2)
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    for _ in range(5):
        stats = distiller.train_step((x, y))
        opt.zero_grad()
        loss = F.cross_entropy(b(x), y)
        loss.backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6)
    with torch.no_grad():
        assert stats["soft"] == pytest.approx(float(F.cross_entropy(b(x), y)), rel=0.2)


def test_feature_distillation_with_projection():
    teacher, student = mlp(32, 0), mlp(8, 1)
    torch.manual_seed(4)
    x = torch.randn(128, 10)
    distiller = Distiller(
        student=student, teacher=teacher, alpha=1.0, features={"1": "1"},
        feature_loss="cosine", feature_weight=1.0, example_input=x[:2], lr=1e-2,
    )  # fmt: skip
    aux = distiller.auxiliary_parameters()
    assert [p.shape for p in aux] == [(32, 8), (32,)]  # 8 -> 32 projection
    in_opt = {id(p) for g in distiller.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in in_opt for p in aux)
    w0 = aux[0].detach().clone()
    first = distiller.train_step(x)
    for _ in range(60):
        last = distiller.train_step(x)
    assert last["features"] < 0.5 * first["features"]
    assert last["loss"] == pytest.approx(last["soft"] + last["features"])
    assert not torch.equal(aux[0].detach(), w0)
    distiller.close()
    student(x)
    assert distiller._student_cap.features == {}  # hooks removed
    assert "cosine" not in repr(distiller) and "CosineFeatureLoss" in repr(distiller)


def test_engine_misuse_is_refused():
    teacher, student = mlp(16, 0), mlp(8, 1)
    with pytest.raises(ValueError, match="example_input"):
        Distiller(student=student, teacher=teacher, features={"1": "1"})
    with pytest.raises(ValueError, match="same module"):
        Distiller(student=student, teacher=student)
    with pytest.raises(ValueError, match="lacks the feature projections"):
        Distiller(
            student=student, teacher=teacher, features={"1": "1"},
            example_input=torch.randn(2, 10), optimizer=torch.optim.SGD(student.parameters(), 0.1),
        )  # fmt: skip
    wide = nn.Sequential(nn.Linear(10, 6))
    with pytest.raises(ValueError, match="vocabularies must be the same"):
        Distiller(student=wide, teacher=teacher, example_input=torch.randn(2, 10))
