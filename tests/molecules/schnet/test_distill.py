"""Distilling a dense SchNet into its pruned copy (chemprune.molecules.schnet.distill)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from chemprune.engines.prune import MagnitudePruner
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.models.schnet import SchNet
from chemprune.molecules.schnet.distill import SchNetDistillation
from chemprune.molecules.schnet.prune_groups import schnet_groups
from chemprune.pipeline.finetune import finetune


@pytest.fixture
def setup(qm9_small):
    torch.manual_seed(0)
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    teacher = SchNet(
        hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10,
        readout="mean", mean=6.8, std=1.3,
    )  # fmt: skip
    return teacher, ms, ms.collate(list(range(40)))


def test_loss_is_zero_for_a_student_equal_to_its_teacher(setup):
    teacher, _, b = setup
    student = copy.deepcopy(teacher)
    kd = SchNetDistillation(teacher=teacher, student=student, mode="features")
    pred, terms = kd(b.z, b.pos, b.batch, b.num_molecules)
    assert float(terms["kd"].detach()) == 0.0 and float(terms["kd_features"]) == 0.0
    torch.testing.assert_close(pred, teacher(b.z, b.pos, b.batch))
    # a pruned student is penalised, on both terms, and gradients reach the student only
    MagnitudePruner(groups=schnet_groups(student, "kernel"), sparsity=0.5, scope="layer").apply(
        student
    )
    pred, terms = kd(b.z, b.pos, b.batch, b.num_molecules)
    assert float(terms["kd_output"]) > 0 and float(terms["kd_features"]) > 0
    terms["kd"].backward()
    assert any(p.grad is not None for p in student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_teacher_is_never_updated_by_distilled_finetuning(setup):
    teacher, ms, _ = setup
    student = copy.deepcopy(teacher)
    MagnitudePruner(groups=schnet_groups(student, "kernel"), sparsity=0.5, scope="layer").apply(
        student
    )
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    kd = SchNetDistillation(teacher=teacher, student=student, mode="features", adapter=True)
    adapters = [p.clone() for p in kd.auxiliary_parameters()]
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    idx = np.arange(len(ms))
    out = finetune(student, ms, idx[:160], idx[160:200], minutes=10, max_steps=8, batch_size=16,
                   lr=1e-3, progress=False, log=lambda m: None, distill=kd, select_best=False)  # fmt: skip
    assert out["steps"] == 8 and out["distill"]["adapter"] is True
    assert teacher.training is False
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, s_before[k]) for k, v in student.state_dict().items())
    assert any(
        not torch.equal(a, p) for a, p in zip(adapters, kd.auxiliary_parameters(), strict=True)
    )


def test_distillation_refuses_mismatched_models(setup):
    teacher, _, _ = setup
    with pytest.raises(ValueError, match="same model"):
        SchNetDistillation(teacher=teacher, student=teacher)
    other = SchNet(hidden_channels=16, filter_channels=8, num_interactions=3, num_gaussians=10)
    with pytest.raises(ValueError, match="interaction blocks"):
        SchNetDistillation(teacher=teacher, student=other)
    with pytest.raises(ValueError, match="mode"):
        SchNetDistillation(teacher=teacher, student=copy.deepcopy(teacher), mode="none")
    with pytest.raises(ValueError, match="feature_weight"):
        SchNetDistillation(teacher=teacher, student=copy.deepcopy(teacher), feature_weight=-1)
    # a narrower atom basis gets an adapter per block, starting from the identity's rows
    narrow = SchNet(hidden_channels=12, filter_channels=8, num_interactions=2, num_gaussians=10)
    kd = SchNetDistillation(teacher=teacher, student=narrow)
    assert kd.settings()["adapter"] and len(kd.auxiliary_parameters()) == 4


def test_cosine_fine_tuning_anneals_to_min_lr_within_the_step_budget(setup):
    teacher, ms, _ = setup
    idx = np.arange(len(ms))
    common = dict(minutes=10, batch_size=16, lr=1e-3, progress=False, log=lambda m: None)
    out = finetune(teacher, ms, idx[:160], idx[160:200], max_steps=10, lr_schedule="cosine",
                   min_lr=1e-5, **common)  # fmt: skip
    assert out["steps"] == 10 and 1e-5 < out["lr_last_step"] < 5e-5
    out = finetune(teacher, ms, idx[:160], idx[160:200], max_steps=3, **common)
    assert out["lr_last_step"] == 1e-3
    with pytest.raises(ValueError, match="min_lr"):
        finetune(teacher, ms, idx[:160], idx[160:200], max_steps=3, lr_schedule="cosine",
                 min_lr=1e-2, **common)  # fmt: skip


def test_a_shallower_student_matches_the_teacher_blocks_it_keeps(setup):
    _, _, b = setup
    torch.manual_seed(1)
    teacher = SchNet(hidden_channels=16, filter_channels=8, num_interactions=3, num_gaussians=10)
    with torch.no_grad():  # teacher block 1 does nothing: blocks 0 and 2 alone are the teacher
        teacher.interactions[1].out.weight.zero_()
        teacher.interactions[1].out.bias.zero_()
    student = SchNet(hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10)
    student.load_state_dict(
        {k.replace("interactions.2.", "interactions.1."): v for k, v in teacher.state_dict().items()
         if not k.startswith("interactions.1.")}
    )  # fmt: skip
    kd = SchNetDistillation(
        teacher=teacher, student=student, mode="features", teacher_blocks=[0, 2]
    )
    _, terms = kd(b.z, b.pos, b.batch, b.num_molecules)
    assert float(terms["kd_features"]) == pytest.approx(0.0, abs=1e-10)
    kd.close()
    kd = SchNetDistillation(
        teacher=teacher, student=student, mode="features", teacher_blocks=[0, 1]
    )
    _, terms = kd(b.z, b.pos, b.batch, b.num_molecules)
    assert float(terms["kd_features"]) > 1e-6  # paired with the wrong blocks
    kd.close()
    with pytest.raises(ValueError, match="give teacher_blocks"):
        SchNetDistillation(teacher=teacher, student=student, mode="features")
    for bad in ([2, 0], [0, 3], [1]):
        with pytest.raises(ValueError, match="increasing blocks"):
            SchNetDistillation(teacher=teacher, student=student, teacher_blocks=bad)
