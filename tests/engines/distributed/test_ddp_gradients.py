"""Two gloo processes started by torchrun: DDP gradients per hook against references."""

from __future__ import annotations

import math

import pytest
import torch

from tests.engines.distributed.conftest import REPO, run_group, torchrun_cmd


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_grads")
    cmd = torchrun_cmd(
        2, str(REPO / "tests" / "engines" / "distributed" / "_grad_worker.py"), str(out)
    )
    done = run_group(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_processes_allreduce_matches_one_process(ranks):
    for r in ranks:
        assert r["world_size"] == 2
        for got, want in zip(r["allreduce"], r["single"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_fp16_and_powersgd_hooks_run_and_agree_between_ranks(ranks):
    for got, want in zip(ranks[0]["fp16"], ranks[0]["single"], strict=True):
        torch.testing.assert_close(got, want, rtol=5e-3, atol=1e-4)
    for name in ("fp16", "powersgd", "powersgd_3", "terngrad_one"):
        for a, b in zip(ranks[0][name], ranks[1][name], strict=True):
            assert torch.isfinite(a).all() and torch.equal(a, b)
    # PowerSGD: plain all-reduce at its first step, a rank-1 approximation from the third on
    for got, want in zip(ranks[0]["powersgd"], ranks[0]["single"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert any(
        not torch.allclose(a, b, rtol=1e-3)
        for a, b in zip(ranks[0]["powersgd_3"], ranks[0]["single"], strict=True)
    )


def test_terngrad_hook_output_is_ternary_per_rank(ranks):
    """One step: the average of two ranks' ternary gradients takes at most 9 values per layer."""
    for g in ranks[0]["terngrad_one"]:
        assert g.unique().numel() <= 9


def test_terngrad_sends_small_and_named_parameters_in_float32(ranks):
    """min_size 10 and 'lin2.*': those gradients equal the fp32 all-reduce; the rest stay
    ternary (at most 9 values per layer for 2 ranks) and both ranks agree."""
    r = ranks[0]
    exact = 0
    for name, got, want, other in zip(
        r["names"], r["terngrad_mixed"], r["allreduce"], ranks[1]["terngrad_mixed"], strict=True
    ):
        assert torch.equal(got, other)
        if got.numel() < 10 or name.startswith("lin2."):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
            exact += 1
        else:
            assert got.unique().numel() <= 9
    assert exact >= 4 and any(n.startswith("lin2.") for n in r["names"])


def test_terngrad_hook_is_unbiased(ranks):
    """The mean over 400 draws approaches the mean over ranks of the clipped local gradients."""
    r = ranks[0]
    draws, world = 400, 2
    for mean, expected, scale in zip(
        r["terngrad_mean"], r["terngrad_expected"], r["terngrad_scale"], strict=True
    ):
        # each rank's draw has variance <= scale^2 / 4: 6 standard errors of the mean
        bound = 6 * float(scale) / (2 * math.sqrt(world * draws)) + 1e-7
        assert (mean - expected).abs().max() <= bound
    far = [
        (m - e).abs().max() / (e.abs().max() + 1e-12)
        for m, e in zip(r["terngrad_mean"], r["terngrad_expected"], strict=True)
    ]
    assert max(far) < 0.5  # and the estimate is informative, not just inside a loose bound


def test_smoothout_under_ddp_restores_weights_and_uses_perturbed_gradients(ranks):
    for r in ranks:
        assert r["smooth_restored"]
        for got, want in zip(r["smooth_grads"], r["smooth_by_hand"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(ranks[0]["smooth_grads"], ranks[0]["single"], strict=True)
    )


def test_smoothout_draw_per_part_sums_perturbed_gradients_and_syncs_once(ranks):
    for r in ranks:
        assert r["pieces_n"] == 3 and r["pieces_err_n"] == 5
        for got, want in zip(r["pieces_grads"], r["pieces_by_hand"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    for a, b in zip(ranks[0]["pieces_grads"], ranks[1]["pieces_grads"], strict=True):
        torch.testing.assert_close(a, b)  # one exchange: both ranks hold the same average
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(ranks[0]["pieces_grads"], ranks[0]["smooth_grads"], strict=True)
    )
