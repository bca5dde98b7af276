"""tabulate_and_check: the smallest passing table is chosen; a failing one is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chemprune.deploy.tabulate import TabulateSettings, TabulationFailed, tabulate_and_check
from chemprune.molecules.checkpoint import load_model
from chemprune.molecules.data.batching import MoleculeSet

RELEASED = Path(__file__).resolve().parents[2] / "models" / "schnet_gap_small.pt"


@pytest.fixture(scope="module")
def setup(qm9_small):
    if not RELEASED.exists():
        pytest.skip("released model not in this checkout")
    model, _ = load_model(RELEASED)
    mset = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    return model, mset, np.arange(len(mset))


def test_the_search_returns_the_smallest_passing_table(setup):
    model, mset, idx = setup
    settings = TabulateSettings(molecules=120, force_molecules=10, time_molecules=64)
    tab, report = tabulate_and_check(model, mset, idx, settings)
    attempts = report["attempts"]
    assert attempts[-1]["passed"] and not any(a["passed"] for a in attempts[:-1])
    assert report["knots"] == tab.table_knots[0] == attempts[-1]["knots"]
    assert report["max_abs_dE"] <= 2 * report["float32_floor"]["max"]
    assert report["mean_abs_dE"] <= 0.01 * report["exact_val_mae"]
    assert report["float32_floor"]["max"] > 0 and report["max_abs_dF"] > 0
    assert report["table_bytes"] == 4 * (report["knots"] - 1) * 4 * 64 * 4
    assert report["speed"]["tabulated"]["mol_per_s_b64"] > 0 and "speedup_b1" in report


def test_too_few_knots_fail_with_the_numbers(setup):
    model, mset, idx = setup
    settings = TabulateSettings(knots=16, molecules=60, force_molecules=5, time_molecules=0)
    with pytest.raises(TabulationFailed, match="at 16 knots: .*max_abs_dE") as err:
        tabulate_and_check(model, mset, idx, settings)
    assert err.value.report["attempts"][0]["passed"] is False
    loose = TabulateSettings(knots=64, tolerance=0.05, molecules=60, force_molecules=5,
                             time_molecules=0)  # fmt: skip
    tab, report = tabulate_and_check(model, mset, idx, loose)
    assert report["limits"] == {"max_abs_dE": 0.05} and tab.table_knots == [64] * 4
