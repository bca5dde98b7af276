"""Property-based fuzzing of every input surface (chemprune.fuzz): no crash, hang, silently
wrong answer or damaged file. A fast slice runs by default; ``-m slow`` runs >= 10,000 cases per
surface (benchmarks/fuzz_report.py prints the same as a table)."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("hypothesis_rdkit")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from chemprune import fuzz  # noqa: E402
from chemprune.cli import build_parser  # noqa: E402

FAST = {"smiles": 60, "xyz": 200, "model": 80, "split": 150, "legacy_model": 80, "argv": 300,
        "reaction": 150}  # fmt: skip
MOLECULAR = tuple(FAST)  # corpus and reaction-model files: tests/reaction_nmt/test_fuzz_reaction.py
SLOW = 10_000


def _settings(n: int):
    return settings(
        max_examples=n, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from chemprune.common.atomic import atomic_save
    from chemprune.molecules.checkpoint import model_checkpoint
    from chemprune.molecules.models.schnet import SchNet

    torch.manual_seed(0)
    m = SchNet(hidden_channels=8, filter_channels=8, num_interactions=1, num_gaussians=8)
    path = tmp_path_factory.mktemp("fuzz") / "m.pt"
    target = {"name": "gap", "unit": "eV", "readout": "mean", "description": "gap"}
    atomic_save(model_checkpoint(m, target=target), path)
    return path.read_bytes(), {k: v.clone() for k, v in m.state_dict().items()}


def _surface(name: str, n: int, checkpoint=None):
    model = checkpoint if name == "model" else None
    strategy, judge = fuzz.surface(name, model=model, parser=build_parser)

    @_settings(n)
    @given(strategy)
    def run(case):
        out = judge(case)
        assert out.kind in ("ok", "refused"), f"{out.kind}: {out.detail} (case {case!r})"

    run()


@pytest.mark.parametrize("surface", MOLECULAR)
def test_fuzz_fast_slice(surface, checkpoint):
    _surface(surface, FAST[surface], checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("surface", MOLECULAR)
def test_fuzz_ten_thousand_cases(surface, checkpoint):
    _surface(surface, SLOW, checkpoint)


def test_oracles_catch_what_they_are_for(tmp_path, checkpoint):
    """The oracles are not vacuous: a silent drop, a damaged load and a crash are reported."""
    content, reference = checkpoint
    other = {k: v + 1 for k, v in reference.items()}
    assert fuzz.model_case(content, other).kind == "wrong"
    assert fuzz.model_case(content, reference).kind == "ok"
    assert fuzz.model_case(content[:100], reference).kind == "refused"
    assert fuzz.xyz_case(b"2\n\nC 0 0 0\nC 0 0 0\n").kind == "refused"
    assert fuzz.xyz_case(b"1\n\nC 0 0 0\n").kind == "ok"
    assert fuzz.xyz_case(b"\xef\xbb\xbf1\n\nC 0 0 0\n").kind == "ok"  # read through a pipe too
    assert fuzz.smiles_case("CCO").kind == "ok"
    assert fuzz.smiles_case("C\u0421O").kind == "refused"
    assert fuzz.reaction_case("CC(=O)Cl.NCC").kind == "ok"
    assert fuzz.reaction_case("CC(=O)Cl NCC").kind == "refused"
    argv = ["train", "--out", "r"]
    assert fuzz.argv_case([*argv, "--lr=nan"], {"lr": lambda v: v > 0}, build_parser).kind == (
        "refused"
    )
    with pytest.raises(ValueError, match="needs model="):
        fuzz.surface("model")
    with pytest.raises(ValueError, match="needs parser="):
        fuzz.surface("argv")
    assert fuzz.argv_case([*argv, "--lr=2"], {"lr": lambda v: v < 1}, build_parser).kind == (
        "wrong"
    )


def test_split_oracle_catches_what_it_is_for(monkeypatch):
    """Split records: a valid one is used (a file without its digest too, warned about once),
    a malformed one refused; ids read back other than the file's, or a missing warning, are
    reported."""
    from chemprune.molecules import checkpoint

    good = {"kind": None, "seed": 0, "sizes": "auto", "digest": True,
            "train": ("int32", [5]), "val": ("int16", [1, 2]), "test": ("uint8", [3])}  # fmt: skip
    assert fuzz.split_case(good).kind == "ok"
    assert fuzz.split_case({**good, "digest": False}).kind == "ok"
    refused = fuzz.split_case({**good, "val": ("float32", [1, 2])})
    assert refused.kind == "refused" and "val ids are float32, not integers" in refused.detail
    assert fuzz.split_case({**good, "test": ("int64", [300])}).kind == "refused"
    real = checkpoint.checkpoint_split

    def off_by_one(ckpt, path, n=None, source=None):
        parts = real(ckpt, path, n, source)
        return None if parts is None else {k: v + 1 for k, v in parts.items()}

    monkeypatch.setattr(checkpoint, "checkpoint_split", off_by_one)
    assert fuzz.split_case(good).kind == "wrong"
    monkeypatch.setattr(checkpoint, "checkpoint_split", real)
    monkeypatch.setattr(checkpoint, "_warn_no_digest", lambda path: None)
    assert fuzz.split_case({**good, "digest": False}).kind == "wrong"
    assert fuzz.smiles_case("[NH4+]").kind == "refused"
    assert fuzz.smiles_case("C[N+](=O)[O-]").kind == "ok"


def test_legacy_model_oracle(tmp_path):
    """The seed loads; a truncated copy and a file carrying a payload are refused, and the
    payload never runs."""
    import os

    import torch

    content, ref = fuzz.legacy_model_reference()
    assert fuzz.legacy_model_case(content, ref).kind == "ok"
    assert fuzz.legacy_model_case(content[: len(content) // 2], ref).kind == "refused"
    marker = tmp_path / "RAN"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil"
    torch.save({"model": torch.nn.Linear(2, 2), "x": Payload()}, path,
               _use_new_zipfile_serialization=False)  # fmt: skip
    assert fuzz.legacy_model_case(path.read_bytes(), ref).kind == "refused"
    assert not marker.exists()
