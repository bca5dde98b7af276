"""chemprune demo on models a user passes: the whole table from a tiny model and its tabulated
copy; models that cannot be compared are refused."""

from __future__ import annotations

import pytest

from chemprune.common.atomic import atomic_save
from chemprune.molecules.checkpoint import load_model, model_checkpoint
from chemprune.molecules.data.qm9 import read_qm9_csv
from chemprune.pipeline.showcase import ShowcaseSettings, showcase
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def data(qm9_dir):
    return read_qm9_csv(sorted(qm9_dir.glob("*.csv")))


def test_a_model_and_its_tabulated_copy_side_by_side(trained, data, tmp_path):
    model, ckpt = load_model(trained)
    tab = tmp_path / "tab.pt"
    atomic_save(model_checkpoint(model.tabulated(256), target=ckpt["target"], data=ckpt["data"]),
                tab)  # fmt: skip
    settings = ShowcaseSettings(models=[trained, tab], time_molecules_b64=16,
                                time_molecules_b1=2, repeats=1)  # fmt: skip
    result = showcase(settings, data)
    a, b = result["models"]
    assert a["table_bytes"] == 0 and b["table_bytes"] > 0 and b["kinds"] == ["tabulated"]
    assert a["test_molecules"] == b["test_molecules"] == len(ckpt["data"]["split"]["test"])
    assert abs(a["test_mae"] - b["test_mae"]) < 1e-3 and a["speedup_b64"] == 1.0
    for m in result["molecules"]:
        assert abs(m["predictions"][0] - m["predictions"][1]) < 1e-3


def test_models_of_other_targets_are_refused(trained, data, tmp_path):
    with pytest.raises(ValueError, match="no models"):
        showcase(ShowcaseSettings(models=[]), data)
    model, ckpt = load_model(trained)
    other = tmp_path / "other.pt"
    target = dict(ckpt["target"], name="mu", unit="D")
    atomic_save(model_checkpoint(model, target=target, data=ckpt["data"]), other)
    r = run_cli("demo", "--models", str(trained), str(other))
    assert r.returncode != 0 and "predicts mu, not gap" in r.stderr
