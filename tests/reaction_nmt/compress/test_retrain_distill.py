"""Retraining distilled from a teacher (``compress(teacher=)``, ``--teacher``)."""

from __future__ import annotations

import pytest
import torch

from reaction_nmt.compress import CompressError
from reaction_nmt.compress.pipeline import compress
from reaction_nmt.compress.storage import load_model


def _structured(tiny_model, synthetic_data, out, **kw) -> dict:
    data = synthetic_data
    work = out.parent / (out.stem + "_work")
    work.mkdir()
    return compress(
        model=tiny_model, data_dir=data, valid=(data / "src-valid.txt", data / "tgt-valid.txt"),
        out=out, work_dir=work, strategy=None, metric="ppl", max_drop=10.0,
        structured={"heads", "ff"}, keep={"heads": 2, "ff": 0.5}, storage="dense",
        valid_limit=8, log=lambda m: None, **{"retrain_steps": 3, **kw},
    )  # fmt: skip


def test_structured_retraining_distilled_from_the_dense_model(tiny_model, synthetic_data, tmp_path):
    torch.set_num_threads(1)
    kd = _structured(tiny_model, synthetic_data, tmp_path / "kd.pt", teacher=tiny_model,
                     kd_alpha=0.7, kd_temperature=3.0)  # fmt: skip
    plain = _structured(tiny_model, synthetic_data, tmp_path / "plain.pt")
    info = kd["structured"]["retrain"]
    assert info["steps"] == 3 and "distill" not in plain["structured"]["retrain"]
    d = info["distill"]
    assert d["batches"] >= 3 and d["teacher_forward_passes"] == d["batches"]
    assert d["kd_per_token"] > 0 and d["ce_per_token"] > 0
    assert kd["teacher"] == {"path": str(tiny_model), "alpha": 0.7, "temperature": 3.0}
    # same removal, other training signal: the retrained weights differ, the shapes do not
    a, b = load_model(tmp_path / "kd.pt")["model"], load_model(tmp_path / "plain.pt")["model"]
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert kd["parameters"] == plain["parameters"] < kd["structured"]["params_before"]


def test_teacher_needs_retraining_and_the_same_vocabulary(tiny_model, synthetic_data, tmp_path):
    with pytest.raises(CompressError, match="give retraining steps"):
        _structured(tiny_model, synthetic_data, tmp_path / "a.pt", teacher=tiny_model,
                    retrain_steps=0)  # fmt: skip
    other = load_model(tiny_model)
    other["vocab"] = {k: list(v)[:-1] + ["<extra>"] for k, v in other["vocab"].items()}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(CompressError, match="another vocabulary"):
        _structured(tiny_model, synthetic_data, tmp_path / "b.pt", teacher=tmp_path / "other.pt")
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()
