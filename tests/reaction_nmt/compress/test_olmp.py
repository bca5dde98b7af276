"""OLMP on the tiny OpenNMT-py model: one threshold per set, the metric constraint holds."""

from __future__ import annotations

import pytest

from reaction_nmt.compress.evaluate import working_copy
from reaction_nmt.compress.olmp import olmp_compress


@pytest.mark.parametrize(("strategy", "max_drop"), [("type", 0.0), ("layer", 0.5)])
def test_thresholds_respect_the_constraint(evaluator, strategy, max_drop):
    working = working_copy(evaluator.model)
    before = evaluator(working)
    pruner, report = olmp_compress(
        working, evaluator, strategy=strategy, max_drop=max_drop, budget=12, log=lambda s: None
    )
    after = evaluator(working)  # measured again, independently of the search's bookkeeping
    assert report.metric_before == pytest.approx(before)
    assert after >= before - max_drop - 1e-6
    assert report.metric_after == pytest.approx(after)
    assert 0 < report.sparsity < 1
    assert set(pruner.c) == set(report.sets)  # one threshold per set
    zeros = sum(int((working.get_submodule(g.name).weight == 0).sum()) for g in pruner.groups)
    assert zeros / report.weights == pytest.approx(report.sparsity, abs=1e-6)
    # the constraint binds: a candidate that violates it was seen and rejected
    history = pruner.results[-1].history
    assert any(v is not None and v < before - max_drop for _, v in history)
