"""Evolved pruning functions: seeds equal the hand-written rules, the search is safe."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from chemprune.engines.prune.discriminant import DISCRIMINANTS, ClassStats, one_vs_rest
from chemprune.engines.prune.evolve import SEEDS, compile_expression, evolve, register_expression


def stats() -> dict:
    torch.manual_seed(0)
    st = ClassStats(3, 5)
    st.add(torch.randn(60, 5) + torch.arange(5) * (torch.arange(60) % 3).unsqueeze(1),
           torch.arange(60) % 3)  # fmt: skip
    return one_vs_rest(st)


@pytest.mark.parametrize("name", ["snr", "fdr", "symmetric_divergence", "t_statistic"])
def test_seed_expressions_match_the_hand_written_functions(name):
    m = stats()
    torch.testing.assert_close(compile_expression(SEEDS[name])(m), DISCRIMINANTS[name](m),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_expressions_never_give_nan():
    zeros = {k: torch.zeros(2, 3, dtype=torch.float64) for k in stats()}
    for text in ["pdiv(mu_in, var_out)", "plog(neg(var_in))", "psqrt(neg(mu_in))",
                 "square(square(square(pdiv(1.0, n_in))))", "mul(pdiv(1.0, 0.5), w_l1)"]:  # fmt: skip
        out = compile_expression(text)(zeros)
        assert out.shape == (2, 3) and torch.isfinite(out).all()
    for bad in ["frobnicate(mu_in)", "add(mu_in", "add(mu_in, mu_out, n_in)", "mu_in)"]:
        with pytest.raises(ValueError, match="not a pruning-function expression"):
            compile_expression(bad)


def test_a_function_is_named_written_or_read_from_an_evolution_run(tmp_path):
    import json

    from chemprune.engines.prune.evolve import resolve_function

    assert resolve_function("snr") == "snr"
    assert resolve_function("square(w_l1)").expression == "square(w_l1)"
    run = tmp_path / "evolved.json"
    run.write_text(json.dumps({"best": "pdiv(mu_in, var_in)", "fitness": 0.9}))
    assert resolve_function(str(run)).expression == "pdiv(mu_in, var_in)"
    run.write_text("{")
    with pytest.raises(ValueError, match="not an evolution result"):
        resolve_function(str(run))
    with pytest.raises(ValueError, match="no such file"):
        resolve_function(str(tmp_path / "missing.json"))


def test_search_returns_a_valid_picklable_expression():
    m = stats()
    target = DISCRIMINANTS["fdr"](m).sum(0)

    def fitness(fn) -> float:  # agree with FDR's channel ranking
        s = fn(m).sum(0)
        if not torch.isfinite(s).all():
            return -math.inf
        return float(torch.corrcoef(torch.stack([s.argsort().argsort().double(),
                                                 target.argsort().argsort().double()]))[0, 1])  # fmt: skip

    seeds = [SEEDS["l1"], "mu_in"]  # start without the answer
    res = evolve(fitness, population=10, generations=3, seeds=seeds, seed=1)
    assert res.fitness >= max(res.evaluated[s] for s in seeds if s in res.evaluated)
    assert [h["best"] for h in res.history] == sorted(h["best"] for h in res.history)  # elitism
    assert pickle.loads(pickle.dumps(res.best)) == res.best
    fn = compile_expression(res.best)
    assert torch.isfinite(fn(m)).all()
    again = evolve(fitness, population=10, generations=3, seeds=seeds, seed=1)
    assert again.best == res.best  # seeded: reproducible


def test_registered_expression_is_an_ordinary_rule():
    register_expression("test_evolved_fdr2", "mul(2.0, " + SEEDS["fdr"] + ")")
    m = stats()
    torch.testing.assert_close(DISCRIMINANTS["test_evolved_fdr2"](m), 2 * DISCRIMINANTS["fdr"](m),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="already exists"):
        register_expression("fdr", "mu_in")
    del DISCRIMINANTS["test_evolved_fdr2"]
