"""The architecture file: read_arch reads back what arch_record writes, with its errors."""

from __future__ import annotations

import json

import pytest

from chemprune.molecules.models.schnet import SchNet
from chemprune.pipeline.search_schnet import arch_record, read_arch


def _report(config):
    return {"derived": {"config": config, "kept_blocks": [0, 2]}, "engine": "darts", "history": []}


def test_read_arch_reads_what_arch_record_writes(tmp_path):
    config = SchNet(
        hidden_channels=8, filter_channels=8, num_interactions=2, num_gaussians=8
    ).config()
    rec = arch_record(_report(config), teacher="t.pt", target={"name": "gap", "unit": "eV"})
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(rec))
    got = read_arch(path)
    assert got.config == config and got.kept_blocks == (0, 2) and got.target == "gap"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not a readable JSON file"),
        ('{"hidden_channels": 4}', "not an architecture written by 'chemprune search'"),
        ('{"format": "chemprune-architecture", "config": {"no": 1}}', "does not build a SchNet"),
    ],
)
def test_read_arch_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_arch(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    with pytest.raises(ValueError, match="not a readable JSON file"):
        read_arch(tmp_path / "missing.json")
