"""Property-based fuzzing of reaction-nmt's file surfaces (chemprune.fuzz.reactions): corpus
CSV/TSV files for ``prepare`` and model files (dense and sparse-int8, as the project writes them).
A fast slice by default; ``-m slow`` runs >= 10,000 cases per surface."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("hypothesis_rdkit")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from chemprune import fuzz  # noqa: E402

FAST = {"corpus": 150, "reaction_model": 60}
SLOW = 10_000


@pytest.fixture(scope="module", params=["dense", "sparse-int8"])
def reaction_model(request, tiny_run, tmp_path_factory):
    from reaction_nmt.compress.storage import load_model, save_model

    path = tmp_path_factory.mktemp("fuzz_rxn") / f"{request.param}.pt"
    save_model(load_model(tiny_run / "model_step_10.pt"), path, request.param)
    return fuzz.reaction_model_reference(path)


def _run(name: str, n: int, model=None) -> None:
    strategy, judge = fuzz.surface(name, model=model)

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def run(case):
        out = judge(case)
        assert out.kind in ("ok", "refused"), f"{out.kind}: {out.detail} (case {case!r})"

    run()


def test_corpus_fast_slice():
    _run("corpus", FAST["corpus"])


def test_reaction_model_fast_slice(reaction_model):
    _run("reaction_model", FAST["reaction_model"], reaction_model)


@pytest.mark.slow
def test_corpus_ten_thousand_cases():
    _run("corpus", SLOW)


@pytest.mark.slow
def test_reaction_model_ten_thousand_cases(reaction_model):
    _run("reaction_model", SLOW, reaction_model)


def test_reaction_oracles_catch_what_they_are_for(reaction_model):
    """Not vacuous: a silently dropped molecule, a row lost, other weights are reported."""
    content, reference = reaction_model
    assert fuzz.reaction_model_case(content, reference).kind == "ok"
    other = dict(reference)
    key = next(iter(other))
    other[key] = other[key] + 1
    assert fuzz.reaction_model_case(content, other).kind == "wrong"
    assert fuzz.reaction_model_case(content[: len(content) // 2], reference).kind == "refused"
    good = b"reaction,split\nCC(=O)Cl.NCC>>CC(=O)NCC,train\n"
    assert fuzz.corpus_case(good).kind == "ok"
    assert fuzz.corpus_case(good.replace(b"\n", b"\r\n")).kind == "ok"
    tsv = good.replace(b",", b"\t")
    assert fuzz.corpus_case(tsv, ".tsv").kind == "ok"  # a .tsv is read tab-separated
    # a space inside the reaction cell would drop the rest: refused, row by row
    spaced = good + b"CCO.CC(=O)O>>CCOC(C)=O O,train\n"
    assert fuzz.corpus_case(spaced).kind == "ok"  # the spaced row is rejected, listed
    from chemprune.fuzz.reactions import _check_split

    stats = {"read": 2, "written": 2, "rejected": 0}
    assert _check_split("train", stats, [{"_line": 2}], "reaction", None, None).kind == "wrong"
