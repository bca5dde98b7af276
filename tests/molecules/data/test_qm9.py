"""QM9 conversion, units, cache and bad source files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chemprune.molecules.data import targets as T
from chemprune.molecules.data.qm9 import QM9FormatError, load_qm9, read_qm9_csv


def test_methane_water_units_by_hand(qm9_small):
    # Molecule 1 is methane, 3 is water (hand-checked against the QM9 XYZ files).
    assert list(qm9_small.ids[:3]) == [1, 2, 3]
    z, pos = qm9_small.molecule(0)
    assert sorted(z.tolist()) == [1, 1, 1, 1, 6]
    ch = np.linalg.norm(pos[1:] - pos[0], axis=1)  # C is atom 0
    np.testing.assert_allclose(ch, 1.0919, atol=2e-3)  # C-H bond in Angstrom
    ha = 27.211386246
    assert qm9_small.target_values("gap")[0] == pytest.approx(0.5048 * ha)
    assert qm9_small.target_values("homo")[0] == pytest.approx(-0.3877 * ha)
    assert qm9_small.target_values("U0")[0] == pytest.approx(-40.47893 * ha)
    # atomization: U0(CH4) - U0(C) - 4 U0(H) = -0.631066 Ha = -17.1722 eV
    assert qm9_small.target_values("U0_atom")[0] == pytest.approx(-0.631066 * ha, abs=1e-5)
    assert qm9_small.target_values("mu")[2] == pytest.approx(1.8511)  # water dipole, Debye
    assert qm9_small.target_values("alpha")[0] == pytest.approx(13.21)  # bohr^3
    assert qm9_small.target_values("Cv")[0] == pytest.approx(6.469)
    assert qm9_small.target_values("zpve")[0] == pytest.approx(0.044749 * ha)


def test_twelve_standard_targets_and_units():
    names = list(T.TARGETS)[:12]
    assert names == ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]
    assert T.GAP.unit == "eV" and T.MU.unit == "D" and T.ALPHA.unit == "a0^3"
    assert T.get_target("u0_ATOM") is T.U0_ATOM
    with pytest.raises(KeyError, match="unknown QM9 target 'bandgap'"):
        T.get_target("bandgap")
    ref = T.atomref_ev(T.U0)
    assert ref[6] == pytest.approx(-37.846772 * T.HARTREE_TO_EV)
    assert T.atomref_ev(T.U0_ATOM) is None and T.atomref_ev(T.GAP) is None


def test_cache_built_reused_and_rebuilt_when_truncated(qm9_dir, tmp_path, caplog):
    data = load_qm9(tmp_path, source_dir=qm9_dir)
    assert len(data) == 240
    (npz,) = (tmp_path / "qm9").glob("*.npz")
    manifest = json.loads(npz.with_suffix(".json").read_text())
    assert manifest["num_molecules"] == 240 and len(manifest["source_files"]) == 3
    again = load_qm9(tmp_path, source_dir=qm9_dir)
    np.testing.assert_array_equal(again.pos, data.pos)
    assert list(again.smiles) == list(data.smiles)
    # truncate the cache: it is rebuilt with a warning, not crashed on
    npz.write_bytes(npz.read_bytes()[:1000])
    with caplog.at_level("WARNING"):
        rebuilt = load_qm9(tmp_path, source_dir=qm9_dir)
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(rebuilt.z, data.z)
    # missing manifest: rebuilt too
    npz.with_suffix(".json").unlink()
    assert len(load_qm9(tmp_path, source_dir=qm9_dir)) == 240


def test_missing_source_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="qm9_part1.csv"):
        load_qm9(tmp_path / "cache", source_dir=tmp_path)


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def test_bad_csv_errors_name_the_file(qm9_rows, tmp_path):
    rows = qm9_rows.iloc[:5].copy()
    bad = rows.copy()
    bad.loc[2, "XYZ_Ang"] = bad.loc[2, "XYZ_Ang"][:-30] + "]]"  # coordinates cut short
    p = _write(bad, tmp_path / "truncated.csv")
    with pytest.raises(QM9FormatError, match="truncated.csv.*coordinates"):
        read_qm9_csv([p])
    bad = rows.copy()
    bad.loc[1, "Elements"] = bad.loc[1, "Elements"].replace("'N'", "'Cl'")
    p = _write(bad, tmp_path / "element.csv")
    with pytest.raises(QM9FormatError, match="element.csv.*unsupported element 'Cl'"):
        read_qm9_csv([p])
    p = _write(rows.drop(columns=["HOMO_LUMO_gap_au"]), tmp_path / "nocol.csv")
    with pytest.raises(QM9FormatError, match="nocol.csv.*HOMO_LUMO_gap_au"):
        read_qm9_csv([p])
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(QM9FormatError, match="empty.csv"):
        read_qm9_csv([p])
    bad = rows.copy()
    bad.loc[0, "XYZ_Ang"] = "[[0.0,0.0,abc]]"
    p = _write(bad, tmp_path / "text.csv")
    with pytest.raises(QM9FormatError, match="text.csv"):
        read_qm9_csv([p])


@pytest.mark.data
def test_full_qm9_counts():
    data = load_qm9()
    assert len(data) == 130_831
    assert len(data.z) == 2_359_210
    assert set(np.unique(data.z).tolist()) == {1, 6, 7, 8, 9}
    assert data.num_atoms.max() == 29
    gap = data.target_values("gap")
    assert 6.8 < gap.mean() < 6.9


def test_cache_rebuilt_when_the_source_csv_changes(qm9_dir, qm9_rows, tmp_path, caplog):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(qm9_dir, src)
    first = load_qm9(tmp_path / "cache", source_dir=src)
    assert len(first) == 240
    qm9_rows.iloc[80:120].to_csv(src / "qm9_part2.csv", index=False)  # 40 molecules fewer
    with caplog.at_level("WARNING"):
        changed = load_qm9(tmp_path / "cache", source_dir=src)
    assert len(changed) == 200 and "built from other versions of qm9_part2.csv" in caplog.text
    caplog.clear()
    (src / "qm9_part1.csv").touch()  # same contents, new time: reused, not rebuilt
    with caplog.at_level("WARNING"):
        assert len(load_qm9(tmp_path / "cache", source_dir=src)) == 200
    assert "rebuilding" not in caplog.text
