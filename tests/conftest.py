"""Shared fixtures: small QM9-format data made from the installed qm9pack files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's cache: CHEMPRUNE_CACHE points to a session temp folder."""
    os.environ["CHEMPRUNE_CACHE"] = str(tmp_path_factory.mktemp("chemprune_cache"))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _qm9pack_csv() -> Path:
    from chemprune.molecules.data.qm9 import qm9pack_data_dir

    return qm9pack_data_dir() / "qm9_part1.csv"


@pytest.fixture(scope="session")
def qm9_rows() -> pd.DataFrame:
    """240 real QM9 molecules: the first 40 (hand-checkable small ones) and 200 sampled later."""
    df = pd.read_csv(_qm9pack_csv(), nrows=4000, dtype={"SMILES": str})
    return pd.concat([df.iloc[:40], df.iloc[40:].sample(200, random_state=0)], ignore_index=True)


@pytest.fixture(scope="session")
def qm9_dir(tmp_path_factory: pytest.TempPathFactory, qm9_rows: pd.DataFrame) -> Path:
    """A folder in qm9pack's format (three part files) with the 240 molecules."""
    folder = tmp_path_factory.mktemp("qm9_small")
    for k in range(3):
        qm9_rows.iloc[80 * k : 80 * (k + 1)].to_csv(folder / f"qm9_part{k + 1}.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def qm9_small(qm9_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    from chemprune.molecules.data.qm9 import read_qm9_csv

    path = tmp_path_factory.mktemp("qm9_one") / "part.csv"
    qm9_rows.to_csv(path, index=False)
    return read_qm9_csv([path])


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chemprune ARGS`` in a subprocess (1 thread, isolated cache)."""

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "chemprune", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=kw.pop("cwd", REPO),
        **kw,
    )
