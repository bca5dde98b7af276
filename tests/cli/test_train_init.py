"""chemprune train --init: a trained (e.g. pruned) model trained on, on its own split, resumable,
with its parent teaching it."""

from __future__ import annotations

import pytest

from chemprune.common.atomic import atomic_save
from chemprune.molecules.checkpoint import load_model, model_checkpoint
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.qm9 import read_qm9_csv
from chemprune.pipeline.compress_schnet import split_from_checkpoint
from chemprune.pipeline.evaluate import evaluate_model
from tests.cli.conftest import TINY
from tests.conftest import run_cli


def init_train(qm9_dir, out, *extra):
    return run_cli("train", "--data-dir", str(qm9_dir), "--target", "gap", "--out", str(out),
                   *TINY, *extra)  # fmt: skip


def test_init_starts_from_the_checkpoint_and_keeps_its_split(trained, qm9_dir, tmp_path):
    data = read_qm9_csv(sorted(qm9_dir.glob("*.csv")))
    mset = MoleculeSet(data.z, data.pos, data.ptr, data.target_values("gap"))
    model, ckpt = load_model(trained)
    split = split_from_checkpoint(ckpt, len(mset))
    out = tmp_path / "ft"
    # a learning rate too small to move anything: the run's model is the checkpoint's
    r = init_train(qm9_dir, out, "--init", str(trained), "--teacher", str(trained),
                   "--epochs", "1", "--lr", "1e-12", "--seed", "3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    got, gckpt = load_model(out / "last.pt")
    assert got.config() == model.config()
    for part in ("train", "val", "test"):  # the checkpoint's molecules, not a --seed 3 split
        assert (split_from_checkpoint(gckpt, len(mset)).part(part) == split.part(part)).all()
    want = evaluate_model(model, mset, split.val)["mae"]
    assert evaluate_model(got, mset, split.val)["mae"] == pytest.approx(want, rel=1e-4)
    r = init_train(qm9_dir, out, "--init", str(trained), "--teacher", str(trained),
                   "--epochs", "2", "--lr", "1e-12", "--seed", "3", "--resume")  # fmt: skip
    assert r.returncode == 0 and "resuming" in r.stdout + r.stderr


def test_init_refusals(trained, qm9_dir, tmp_path):
    r = init_train(qm9_dir, tmp_path / "a", "--init", str(trained), "--subset", "100")
    assert r.returncode == 2 and "--init trains on its checkpoint's split" in r.stderr
    model, ckpt = load_model(trained)
    tab = tmp_path / "tab.pt"
    atomic_save(model_checkpoint(model.tabulated(64), target=ckpt["target"], data=ckpt["data"]),
                tab)  # fmt: skip
    r = init_train(qm9_dir, tmp_path / "b", "--init", str(tab))
    assert r.returncode == 2 and "has tabulated filters, which do not train" in r.stderr
    r = run_cli("train", "--data-dir", str(qm9_dir), "--target", "homo", "--init", str(trained),
                "--out", str(tmp_path / "c"), *TINY)  # fmt: skip
    assert r.returncode == 2 and "predicts 'gap', this run 'homo'" in r.stderr


def test_an_explicit_split_is_kept_through_the_run(trained, qm9_dir, tmp_path):
    """An imported model's split (made elsewhere, no seed reproduces it) stays explicit in the
    checkpoints of a run started from it."""
    from chemprune.molecules.data.splits import Split
    from chemprune.pipeline.train_state import split_dict

    data = read_qm9_csv(sorted(qm9_dir.glob("*.csv")))
    model, ckpt = load_model(trained)
    seeded = split_from_checkpoint(ckpt, len(data))
    # another assignment than any seed gives: the first half of the training molecules only
    explicit = Split(train=seeded.train[: len(seeded.train) // 2], val=seeded.val,
                     test=seeded.test, seed=-1)  # fmt: skip
    init = tmp_path / "imported.pt"
    atomic_save(model_checkpoint(model, target=ckpt["target"], data=split_dict(explicit, "x")),
                init)  # fmt: skip
    out = tmp_path / "run"
    r = init_train(qm9_dir, out, "--init", str(init), "--epochs", "1", "--lr", "1e-12")
    assert r.returncode == 0, r.stderr
    saved = load_model(out / "last.pt")[1]["data"]["split"]
    assert saved["kind"] == "explicit"
    got = split_from_checkpoint({"data": {"split": saved}}, len(data))
    for part in ("train", "val", "test"):
        assert (got.part(part) == explicit.part(part)).all()
