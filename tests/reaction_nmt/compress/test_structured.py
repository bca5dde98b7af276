"""Heads and feed-forward units removed for real give the masked model's outputs, and the
smaller checkpoint loads and translates through the backend."""

from __future__ import annotations

import pytest
import torch

from reaction_nmt.compress import CompressError
from reaction_nmt.compress.checkpoint import export_checkpoint, save_atomic
from reaction_nmt.compress.evaluate import working_copy
from reaction_nmt.compress.structured import (
    ff_groups,
    head_groups,
    keep_count,
    mask_structured,
    remove_structured,
    shrunk_opt,
    structured_keep,
)

from .conftest import valid_slice


def logits(evaluator, model):
    return torch.cat([x.flatten() for x in evaluator.logits(model)])


@pytest.mark.parametrize("kinds", [("heads",), ("ff",), ("heads", "ff")])
def test_removal_equals_masking_and_loads(evaluator, tiny_model, synthetic_data, tmp_path, kinds):
    from reaction_nmt.backend import Translator, load_checkpoint

    template = load_checkpoint(tiny_model)
    working = working_copy(evaluator.model)
    built = {k: list(v.shape) for k, v in working.named_parameters(remove_duplicate=False)}
    dense_out = logits(evaluator, working)
    groups = (head_groups(working) if "heads" in kinds else []) + (
        ff_groups(working) if "ff" in kinds else []
    )
    keep = structured_keep(working, groups, {"heads": 1, "ff": 0.25})
    for g, k in keep.items():
        assert int(k.sum()) == (1 if g.tags[0] == "heads" else g.size // 4)
    mask_structured(working, keep)
    masked = logits(evaluator, working)
    assert not torch.allclose(masked, dense_out, atol=1e-3)  # something was removed
    save_atomic(export_checkpoint(working, template), tmp_path / "masked.pt")
    n_before = sum(p.numel() for p in working.parameters())
    remove_structured(working, groups)
    assert sum(p.numel() for p in working.parameters()) < n_before
    shrunk = logits(evaluator, working)
    torch.testing.assert_close(shrunk, masked, atol=1e-5, rtol=0)
    # the smaller checkpoint: heads need the loading hook, a uniform FF width is plain config
    opt = shrunk_opt(template["opt"], working, built)
    assert hasattr(opt, "compress_heads") == ("heads" in kinds)
    if "ff" in kinds:
        assert opt.transformer_ff == 64
    path = tmp_path / "shrunk.pt"
    save_atomic(export_checkpoint(working, template, opt=opt), path)
    assert path.stat().st_size < (tmp_path / "masked.pt").stat().st_size
    src, _ = valid_slice(synthetic_data, 8)
    translator = Translator(path, beam_size=2, n_best=1, max_length=30)
    loaded = translator._engine.translator.model
    heads = {m.head_count for _, m in loaded.named_modules() if hasattr(m, "head_count")}
    assert heads == ({1} if "heads" in kinds else {4})
    expected = Translator(tmp_path / "masked.pt", beam_size=2, n_best=1, max_length=30)
    want, got = expected.translate(src), translator.translate(src)
    assert [g[0][0] for g in got] == [w[0][0] for w in want]
    assert [g[0][1] for g in got] == pytest.approx([w[0][1] for w in want], abs=1e-4)


def test_keep_counts():
    assert keep_count(2, 8, "heads") == 2
    assert keep_count(0.5, 8, "heads") == 4
    assert keep_count(0.01, 8, "heads") == 1
    with pytest.raises(CompressError, match="between 1 and 8"):
        keep_count(9, 8, "heads")
    with pytest.raises(CompressError, match="fraction"):
        keep_count(1.5, 8, "ff")
