"""The teacher cache: round trips, top-k, limits, and soft targets from cached logits."""

from __future__ import annotations

import pytest
import torch

from chemprune.engines.distill import SoftTargetLoss, TeacherCache, soft_target_kl


def test_full_rows_round_trip_in_float16():
    torch.manual_seed(0)
    cache = TeacherCache()
    logits = torch.randn(5, 9) * 4
    assert cache.put(b"a", logits) and b"a" in cache and len(cache) == 1
    back = cache.dense(b"a", 9)
    torch.testing.assert_close(back, logits, atol=1e-2, rtol=1e-3)
    assert back.dtype == torch.float32
    assert cache.dense(b"b", 9) is None
    assert cache.stats() == {
        "entries": 1, "bytes": 5 * 9 * 2, "hits": 1, "misses": 1, "full": False, "top_k": None,
    }  # fmt: skip
    cache.dense(b"a", 9, count=False)
    assert cache.hits == 1


def test_top_k_keeps_the_largest_and_the_kl_renormalises_over_them():
    torch.manual_seed(1)
    cache = TeacherCache(top_k=3, dtype=torch.float32)
    t, s = torch.randn(4, 8), torch.randn(4, 8, requires_grad=True)
    cache.put(b"k", t)
    dense = cache.dense(b"k", 8)
    assert (torch.isfinite(dense).sum(1) == 3).all()
    top = t.topk(3, dim=1)
    torch.testing.assert_close(dense.gather(1, top.indices), top.values)
    T = 2.0
    got = soft_target_kl(s, dense, T)
    p = torch.softmax(top.values / T, 1)  # the teacher's mass, renormalised over its top 3
    log_s = torch.log_softmax(s / T, 1).gather(1, top.indices)
    manual = (p * (p.log() - log_s)).sum(1) * T * T
    torch.testing.assert_close(got, manual)
    SoftTargetLoss(temperature=T)(s, dense).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_limits_and_bad_options():
    cache = TeacherCache(max_bytes=100)
    assert cache.put(b"a", torch.zeros(5, 9))  # 90 bytes
    assert not cache.put(b"b", torch.zeros(1, 9)) and cache.full and b"b" not in cache
    with pytest.raises(ValueError, match="top_k"):
        TeacherCache(top_k=0)
    assert "entries=1" in repr(cache)
