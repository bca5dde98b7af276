"""Gradual magnitude pruning in OLMP's retraining rounds (``compress(gradual=)``, ``--gradual``)."""

from __future__ import annotations

import pytest
import torch

from reaction_nmt.compress import CompressError
from reaction_nmt.compress.gradual import GradualPruning
from reaction_nmt.compress.pipeline import compress
from reaction_nmt.compress.storage import load_model


def _toy():
    g = torch.Generator().manual_seed(0)
    params = {n: torch.randn(*shape, generator=g) for n, shape in
              {"a.weight": (20, 10), "b.weight": (30,), "c.weight": (10, 5)}.items()}  # fmt: skip
    masks = {n: torch.ones_like(p) for n, p in params.items()}
    masks["a.weight"].view(-1)[:100] = 0  # set x starts at 100/230 pruned, set y at 0
    return params, masks, {"x": ["a.weight", "b.weight"], "y": ["c.weight"]}


def test_the_ramp_reaches_the_target_keeping_each_sets_share():
    params, masks, sets = _toy()
    plan = GradualPruning(0.8, ramp=0.5, every=5).plan(sets, masks, steps=40)
    assert plan.initial == pytest.approx(100 / 280)
    seen, before = [], {n: m.clone() for n, m in masks.items()}
    for step in range(1, 41):
        if plan.update(params, step):
            seen.append(step)
            for n, m in masks.items():  # masks only shrink
                assert bool((m <= before[n]).all())
                before[n] = m.clone()
            for n in masks:  # what the trainer does after the hook
                params[n].mul_(masks[n])
            s = 1 - plan.kept()
            assert s == pytest.approx(plan.sparsity_at(step), abs=2 / 280)
    assert seen == [5, 10, 15, 20] and plan.updates == 4
    assert 1 - plan.kept() == pytest.approx(0.8, abs=1 / 280)
    # the cubic ramp: most of the pruning early
    assert plan.sparsity_at(5) - plan.initial > plan.sparsity_at(20) - plan.sparsity_at(15)
    # each set keeps its share of the kept weights: x kept 130 of 230, y 50 of 50 at the start
    kept = {s: sum(int(masks[n].count_nonzero()) for n in ns) for s, ns in sets.items()}
    assert kept["x"] / kept["y"] == pytest.approx(130 / 50, rel=0.05)
    # inside a set, one magnitude threshold: every kept weight outweighs every pruned one
    x = torch.cat([(params[n].abs()).flatten() for n in sets["x"]])
    mx = torch.cat([masks[n].flatten() for n in sets["x"]]).bool()
    assert x[mx].min() >= x[~mx].max()


def test_no_ramp_when_the_search_already_went_further():
    params, masks, sets = _toy()
    plan = GradualPruning(0.2).plan(sets, masks, steps=40)
    assert not any(plan.update(params, s) for s in range(1, 41))
    assert plan.kept() == pytest.approx(180 / 280)


@pytest.mark.parametrize(
    "kw, match",
    [({"target": 1.0}, "target"), ({"target": 0.5, "ramp": 0.0}, "ramp"),
     ({"target": 0.5, "every": 0}, "every")],
)  # fmt: skip
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(CompressError, match=match):
        GradualPruning(**kw)


def _olmp(tiny_model, synthetic_data, out, **kw) -> dict:
    data = synthetic_data
    work = out.parent / (out.stem + "_work")
    work.mkdir()
    return compress(
        model=tiny_model, data_dir=data, valid=(data / "src-valid.txt", data / "tgt-valid.txt"),
        out=out, work_dir=work, strategy="type", metric="ppl", storage="dense",
        valid_limit=8, budget=2, warm_start=0, log=lambda m: None,
        **{"retrain_steps": 8, "rounds": 1, **kw},
    )  # fmt: skip


def test_retraining_round_prunes_to_the_target(tiny_model, synthetic_data, tmp_path):
    torch.set_num_threads(1)
    # no constraint worth the name (the tiny model's perplexity may rise by 1e6): the search
    # after the round keeps at least what the ramp pruned
    rep = _olmp(tiny_model, synthetic_data, tmp_path / "g.pt", max_drop=1e6, goal=0.5,
                gradual=GradualPruning(0.9, ramp=0.5, every=2))  # fmt: skip
    info = rep["olmp"]["rounds"][1]["retrain"]
    g = info["gradual"]
    assert info["steps"] == 8 and g["mask_updates"] == 2
    assert g["sparsity_to"] == pytest.approx(0.9, abs=1e-3) and g["sparsity_from"] < 0.9
    assert rep["olmp"]["sparsity"] >= 0.9 - 1e-3
    state = load_model(tmp_path / "g.pt")["model"]
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros >= 0.85  # the file holds the pruned weights as zeros (norms' weights are 1-D)


def test_gradual_needs_olmp_retraining(tiny_model, synthetic_data, tmp_path):
    with pytest.raises(CompressError, match="retraining rounds"):
        _olmp(tiny_model, synthetic_data, tmp_path / "a.pt", max_drop=1e6,
              gradual=GradualPruning(0.9), retrain_steps=0)  # fmt: skip
    assert not (tmp_path / "a.pt").exists()
