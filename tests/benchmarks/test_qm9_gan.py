"""benchmarks/qm9_gan.py --quick on the fixture: the diversity rows train, and every row records
the coverage of its generators."""

from __future__ import annotations

import json

import pytest

from benchmarks import qm9_gan


def test_new_methods_are_selectable_and_checked():
    args = qm9_gan.parse_args(["--methods", "single_bf,single_pack2,single_ms,k4_all"])
    assert args.methods == ["single_bf", "single_pack2", "single_ms", "k4_all"]
    assert args.steps == 15_000 and args.minutes is None  # budgets in steps
    assert qm9_gan.VARIANTS["single_pack2"]["pack"] == 2
    assert qm9_gan.VARIANTS["k4_all"]["mode_seeking"] > 0
    with pytest.raises(SystemExit):
        qm9_gan.parse_args(["--methods", "single,nope"])


def test_quick_run_records_coverage(qm9_dir, tmp_path, capsys):
    out = tmp_path / "g.json"
    rc = qm9_gan.main([
        "--quick", "--data-dir", str(qm9_dir), "--methods", "single_ms,k4_all,k4_all_pack2",
        "--no-compress", "--work-dir", str(tmp_path / "w"), "--out", str(out),
        "--plot", str(tmp_path / "g.png"), "--grid", str(tmp_path / "grid.png"),
    ])  # fmt: skip
    assert rc == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {f"{m}_s{s}" for m in ("single_ms", "k4_all", "k4_all_pack2")
                         for s in (0, 1)}  # fmt: skip
    for name, r in rows.items():
        assert "error" not in r, (name, r.get("error"))
        assert r["steps"] == 10
        cov = r["coverage"]
        k = 1 if name.startswith("single") else 4
        assert len(cov["generators"]) == k
        assert sum(g["samples"] for g in cov["generators"]) == 100
        assert cov["union"] == round(r["uniqueness"] * r["validity"] * 100)
        if k > 1:  # the JSON's per-generator record agrees with the coverage
            per = r["per_generator"]
            assert [per[str(i)]["distinct"] for i in range(k)] == [
                g["distinct"] for g in cov["generators"]
            ]


def test_the_validity_rows(qm9_dir, tmp_path):
    """single_valence, single_rl (warm-up: half the steps) and k4_mgan_same train in --quick."""
    args = qm9_gan.parse_args(["--methods", "single_valence,single_rl,k4_mgan_same"])
    assert args.methods == ["single_valence", "single_rl", "k4_mgan_same"]
    assert qm9_gan.VARIANTS["single_rl"]["rl_weight"] == 0.5
    assert qm9_gan.VARIANTS["k4_mgan_same"]["same_noise"] is True
    out = tmp_path / "v.json"
    rc = qm9_gan.main([
        "--quick", "--data-dir", str(qm9_dir), "--methods", "single_valence,single_rl,k4_mgan_same",
        "--no-compress", "--work-dir", str(tmp_path / "w"), "--out", str(out),
        "--plot", str(tmp_path / "v.png"), "--grid", str(tmp_path / "vgrid.png"),
    ])  # fmt: skip
    assert rc == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {f"{m}_s{s}" for m in ("single_valence", "single_rl", "k4_mgan_same")
                         for s in (0, 1)}  # fmt: skip
    for name in rows:
        assert "error" not in rows[name], rows[name].get("error")
        assert rows[name]["steps"] == 10
    from chemprune.engines.gan.checkpoint import load_generator_file

    ckpt = load_generator_file(tmp_path / "w" / "rows" / "single_rl_s0.pt")
    assert ckpt["settings"]["rl_warmup"] == 5 and ckpt["engine_options"]["rl_weight"] == 0.5
