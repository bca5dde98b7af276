"""``chemprune tabulate``: writes a checked model, or nothing with a one-line error."""

from __future__ import annotations

import json

from chemprune.molecules.checkpoint import load_model
from tests.conftest import run_cli


def test_tabulate_writes_a_checked_model_that_predict_and_evaluate_take(trained, qm9_dir, tmp_path):
    out = tmp_path / "tab.pt"
    r = run_cli(
        "tabulate", "--model", str(trained), "--out", str(out), "--data-dir", str(qm9_dir),
        "--time-molecules", "32",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "knots" in r.stdout and "max |dF|" in r.stdout and f"wrote {out}" in r.stdout
    model, ckpt = load_model(out)
    assert set(model.block_kinds) == {"tabulated"}
    assert ckpt["tabulation"]["passed"] and ckpt["tabulation"]["source"] == str(trained)
    r = run_cli("evaluate", "--model", str(out), "--data-dir", str(qm9_dir), "--json")
    assert r.returncode == 0, r.stderr
    exact = run_cli("evaluate", "--model", str(trained), "--data-dir", str(qm9_dir), "--json")
    a, b = json.loads(r.stdout), json.loads(exact.stdout)
    assert abs(a["mae"] - b["mae"]) < 1e-4
    r = run_cli("tabulate", "--model", str(out), "--out", str(tmp_path / "again.pt"),
                "--data-dir", str(qm9_dir))  # fmt: skip
    assert r.returncode == 2 and "already tabulated" in r.stderr


def test_a_table_that_fails_the_check_is_not_written(trained, qm9_dir, tmp_path):
    out = tmp_path / "coarse.pt"
    r = run_cli("tabulate", "--model", str(trained), "--out", str(out), "--knots", "3",
                "--data-dir", str(qm9_dir))  # fmt: skip
    assert r.returncode == 2
    assert "no table passed the check (at 3 knots" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = run_cli("tabulate", "--model", str(trained), "--out", str(out), "--knots", "1")
    assert r.returncode == 2 and "--knots" in r.stderr
