"""Checkpoints: atomic writes, weights-only loading, clear errors for bad files."""

from __future__ import annotations

import argparse

import pytest
import torch

from chemprune.common.atomic import CheckpointError, atomic_save, atomic_write_text, weights_digest
from chemprune.molecules.checkpoint import (
    checkpoint_split,
    load_checkpoint,
    load_model,
    model_checkpoint,
)
from chemprune.molecules.models.schnet import SchNet

TARGET = {"name": "gap", "unit": "eV", "readout": "mean", "description": "HOMO-LUMO gap"}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    m = SchNet(hidden_channels=8, filter_channels=[6, 3], num_interactions=2, num_gaussians=8)
    path = atomic_save(
        model_checkpoint(m, target=TARGET, metrics={"val_mae": 0.5}), tmp_path / "m.pt"
    )
    return m, path


def test_round_trip_rebuilds_architecture(saved):
    m, path = saved
    model, ckpt = load_model(path)
    assert model.filter_channels == [6, 3] and not model.training
    assert ckpt["target"]["unit"] == "eV" and ckpt["metrics"]["val_mae"] == 0.5
    for k, v in m.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


def test_atomic_save_keeps_old_file_when_writing_fails(saved, monkeypatch):
    _, path = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"x": 1}, path)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))


def test_atomic_write_text_replaces_whole_file_or_nothing(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "sub" / "r.json", '{"a": 1}\nµ\n')
    assert path.read_text(encoding="utf-8") == '{"a": 1}\nµ\n'
    atomic_write_text(path, "short")
    assert path.read_text() == "short"  # replaced, not overwritten in place

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr("chemprune.common.atomic.os.fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new text that never lands")
    assert path.read_text() == "short"
    assert not list(path.parent.glob(".*.tmp"))


def test_missing_empty_truncated_garbage(tmp_path, saved):
    _, good = saved
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="cut.pt is truncated or corrupted"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="noise.pt"):
        load_checkpoint(tmp_path / "noise.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_foreign_and_unsafe_files(tmp_path):
    from chemprune.molecules.interop.pyg import make_pyg_schnet

    torch.save(
        make_pyg_schnet(hidden_channels=8, num_filters=8, num_interactions=1).state_dict(),
        tmp_path / "pyg.pt",
    )
    with pytest.raises(CheckpointError, match="not a chemprune SchNet checkpoint.*state_dict"):
        load_checkpoint(tmp_path / "pyg.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a chemprune"):
        load_checkpoint(tmp_path / "other.pt")
    # arbitrary pickled objects are refused, not executed, and no message suggests loading
    # them with weights_only=False (torch's own message does)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "chemprune.schnet", "opt": argparse.Namespace(a=1)}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    assert str(err.value) == (
        f"model file {evil} holds objects other than tensors and plain data (it names the "
        "Python object argparse.Namespace) and is not loaded: every file chemprune writes "
        "holds tensors and plain data only (a model pickled whole by another program? save its "
        "state_dict there)"
    )


def test_newer_format_and_mismatched_weights(tmp_path, saved):
    m, _ = saved
    ckpt = model_checkpoint(m, target=TARGET)
    atomic_save({**ckpt, "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")
    bad = {**ckpt, "config": {**ckpt["config"], "filter_channels": [6, 6]}}
    atomic_save(bad, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="mismatch.pt is corrupted: its weights or arch"):
        load_model(tmp_path / "mismatch.pt")
    # a file from before checksums: the architecture check still names the problem
    old = {k: v for k, v in bad.items() if k != "integrity"}
    atomic_save(old, tmp_path / "mismatch_old.pt")
    with pytest.raises(CheckpointError, match="mismatch_old.pt: architecture and weights disagree"):
        load_model(tmp_path / "mismatch_old.pt")


def test_checksum_catches_a_flipped_weight_byte(tmp_path, saved):
    m, _ = saved
    path = tmp_path / "m.pt"
    atomic_save(model_checkpoint(m, target=TARGET), path)
    load_model(path)  # intact
    # find one weight's bytes inside the zip archive and flip one bit of them
    blob = bytearray(path.read_bytes())
    weight = m.state_dict()["embedding.weight"].contiguous().numpy().tobytes()
    at = bytes(blob).find(weight[:64])
    assert at > 0, "the weights are stored uncompressed"
    blob[at + 5] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(blob))
    ckpt = torch.load(tmp_path / "flipped.pt", weights_only=True)  # torch itself notices nothing
    assert not torch.equal(
        ckpt["state_dict"]["embedding.weight"], m.state_dict()["embedding.weight"]
    )
    with pytest.raises(CheckpointError, match=r"flipped\.pt is corrupted: .*checksum"):
        load_model(tmp_path / "flipped.pt")


def test_checksum_covers_target_and_digest_is_stable(tmp_path, saved):
    m, _ = saved
    a, b = model_checkpoint(m, target=TARGET), model_checkpoint(m, target=TARGET)
    assert a["integrity"]["digest"] == b["integrity"]["digest"]
    assert weights_digest(a["state_dict"], a["config"], a["target"]) == a["integrity"]["digest"]
    relabelled = {**a, "target": {**a["target"], "unit": "kcal/mol"}}
    atomic_save(relabelled, tmp_path / "relabelled.pt")
    with pytest.raises(CheckpointError, match="relabelled.pt is corrupted"):
        load_checkpoint(tmp_path / "relabelled.pt")


def test_non_finite_weights_refused(tmp_path, saved):
    m, _ = saved
    ckpt = model_checkpoint(m, target=TARGET)
    state = dict(ckpt["state_dict"])
    w = state["embedding.weight"].clone()
    w[3, 1] = float("nan")
    state["embedding.weight"] = w
    # a NaN written by a bad run, with a matching checksum: refused for the NaN itself
    nan = model_checkpoint(m, target=TARGET)
    nan["state_dict"] = state
    nan["integrity"]["digest"] = weights_digest(state, nan["config"], nan["target"])
    atomic_save(nan, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt: 1 non-finite weight\(s\) in 'embedding"):
        load_model(tmp_path / "nan.pt")


def test_unpickling_refusal_never_repeats_torchs_advice(tmp_path):
    from chemprune.common.atomic import unpickling_refusal

    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(Exception) as err:  # torch's own error, with its advice
        torch.load(tmp_path / "module.pt", weights_only=True)
    assert "weights_only" in str(err.value) and "\n" in str(err.value)
    detail = unpickling_refusal(err.value)
    assert detail == "it names the Python object torch.nn.modules.linear.Linear"
    assert unpickling_refusal(ValueError("")) == "the unpickler refused it"


def test_a_file_without_digest_loads_with_one_warning(tmp_path, saved, capsys):
    m, _ = saved
    old = {k: v for k, v in model_checkpoint(m, target=TARGET).items() if k != "integrity"}
    path = atomic_save(old, tmp_path / "old.pt")
    for _ in range(3):
        load_model(path)
    assert capsys.readouterr().err == (
        f"chemprune: warning: {path} carries no digest (written before chemprune checkpoints "
        "had one): its integrity cannot be checked\n"
    )
    load_model(saved[1])  # a file with its digest: no word
    assert capsys.readouterr().err == ""
    # its names are still checked for shape (the CLIs print them escaped)
    atomic_save({**old, "target": {**TARGET, "unit": 3}}, tmp_path / "unit.pt")
    with pytest.raises(CheckpointError, match="unit.pt: its target's name or unit is not a str"):
        load_checkpoint(tmp_path / "unit.pt")


def test_checkpoint_split_names_the_file(tmp_path, saved):
    m, _ = saved
    split = {
        "seed": 0,
        "sizes": [6, 2, 2],
        "val": torch.tensor([1, 4]),
        "test": torch.tensor([0, 7]),
    }
    ckpt = model_checkpoint(m, target=TARGET, data={"source": "qm9 (10 molecules)", "split": split})
    assert checkpoint_split(ckpt, "m.pt")["val"].tolist() == [1, 4]
    assert checkpoint_split(model_checkpoint(m, target=TARGET), "m.pt") is None
    bad = {**ckpt, "data": {**ckpt["data"], "split": {**split, "val": torch.tensor([1, -1])}}}
    with pytest.raises(CheckpointError) as err:
        checkpoint_split(bad, "m.pt")
    assert str(err.value) == "checkpoint m.pt has an invalid split: val holds the negative id -1"
    with pytest.raises(CheckpointError) as err:  # beyond the end of the data it records
        checkpoint_split(ckpt, "m.pt", 5, "qm9 (10 molecules)")
    assert str(err.value) == (
        "checkpoint m.pt has an invalid split: test names molecule 7, beyond the 5 of the data "
        "set it records"
    )
    with pytest.raises(CheckpointError) as err:  # beyond the end of other data
        checkpoint_split(ckpt, "m.pt", 5, "qm9 (5 molecules)")
    assert str(err.value) == (
        "model file m.pt was trained on other data (qm9 (10 molecules)): its split names "
        "molecule 7, this data set has 5; pass its --data-dir"
    )
    with pytest.raises(CheckpointError, match="^checkpoint m.pt has an invalid data section"):
        checkpoint_split({**ckpt, "data": [1]}, "m.pt")
