"""schnetpack 0.x model files: read without running them, imported with identical outputs.

The tests that need the benchmark model skip when ``../shared/models/schnetpack_qm9_u0`` is
absent; the safety tests build their own legacy-format files.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from chemprune.common.atomic import CheckpointError
from chemprune.molecules.checkpoint import load_model
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.qm9 import CSV_FILES, qm9pack_data_dir
from chemprune.molecules.interop.legacy_pickle import UnsafePickleError, load_legacy_torch_file
from chemprune.molecules.interop.schnetpack_legacy import (
    UnsupportedModelError,
    from_schnetpack_legacy,
    read_schnetpack_legacy,
)
from chemprune.molecules.interop.schnetpack_split import map_to_rows, read_schnetpack_split
from chemprune.pipeline.compress_schnet import split_from_checkpoint
from tests.conftest import REPO, run_cli

SHARED = REPO.parent / "shared" / "models" / "schnetpack_qm9_u0"
needs_model = pytest.mark.skipif(
    not (SHARED / "best_model").is_file(), reason="schnetpack benchmark model not present"
)


# ------------------------------------------------------------------ independent reference
def _dense(t: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    y = x @ t[f"{name}.weight"].double().T
    return y + t[f"{name}.bias"].double() if f"{name}.bias" in t else y


def _ssp(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x) - math.log(2.0)


def schnetpack0_energy(t: dict[str, torch.Tensor], z: torch.Tensor, pos: torch.Tensor) -> float:
    """schnetpack 0.x ``AtomisticModel(SchNet, Atomwise)`` on one molecule, in float64, from
    the file's flat tensors: all neighbours ``j != i``, Gaussian smearing, cosine cutoff,
    CFConv (sum), residual updates, Atomwise MLP, ScaleShift, atomref, sum over atoms."""
    rep, head = "representation", "output_modules.0"
    pos = pos.double()
    n = len(z)
    x = t[f"{rep}.embedding.weight"].double()[z]
    d = (pos[:, None, :] - pos[None, :, :]).norm(dim=-1)  # [n, n]
    mask = ~torch.eye(n, dtype=torch.bool)
    mu = t[f"{rep}.distance_expansion.offsets"].double()
    width = t[f"{rep}.distance_expansion.width"].double()
    f = torch.exp(-0.5 * (d[..., None] - mu) ** 2 / width**2)  # [n, n, G]
    b = 0
    while f"{rep}.interactions.{b}.dense.weight" in t:
        p = f"{rep}.interactions.{b}"
        rc = float(t[f"{p}.cfconv.cutoff_network.cutoff"])
        cut = 0.5 * (torch.cos(d * math.pi / rc) + 1.0) * (d < rc).double()
        w = _dense(
            t, f"{p}.cfconv.filter_network.1", _ssp(_dense(t, f"{p}.cfconv.filter_network.0", f))
        )
        w = w * cut[..., None]
        y = _dense(t, f"{p}.cfconv.in2f", x)  # [n, F]
        conv = (y[None, :, :] * w * mask[..., None]).sum(dim=1)  # sum over neighbours j
        v = _dense(t, f"{p}.dense", _ssp(_dense(t, f"{p}.cfconv.f2out", conv)))
        x = x + v
        b += 1
    mlp = f"{head}.out_net.1.out_net"
    yi = _dense(t, f"{mlp}.1", _ssp(_dense(t, f"{mlp}.0", x)))[:, 0]
    yi = yi * t[f"{head}.standardize.stddev"].double() + t[f"{head}.standardize.mean"].double()
    yi = yi + t[f"{head}.atomref.weight"].double()[z, 0]
    return float(yi.sum())


# ------------------------------------------------------------------ the benchmark model
@pytest.fixture(scope="module")
def legacy():
    return read_schnetpack_legacy(SHARED / "best_model")


@needs_model
def test_imported_model_equals_the_independent_reference(legacy, qm9_small):
    model, info = from_schnetpack_legacy(legacy)
    assert info["property"] == "energy_U0" and info["aggregation"] == "sum"
    assert model.cutoff == 10.0 and model.filter_channels == [128] * 6
    assert model.num_gaussians == 50 and model.lin1.out_features == 64
    mset = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    picks = [0, 5, 39, 120, 200, 239]
    b = mset.collate(picks)
    with torch.no_grad():
        got64 = model.double()(b.z, b.pos.double(), b.batch)
        got32 = copy.deepcopy(model).float()(b.z, b.pos, b.batch)
    for k, m in enumerate(picks):
        z, pos = (torch.as_tensor(a) for a in qm9_small.molecule(m))
        z = z.long()
        want = schnetpack0_energy(legacy.tensors, z, pos)
        # float64 on both sides: identical functions (1e-5 eV per atom)
        assert abs(float(got64[k]) - want) <= 1e-5 * len(z), (m, float(got64[k]), want)
        # float32 (as it runs): rounding of totals near -1e4 eV only (<= 1.7e-4 eV per atom
        # on 300 test molecules)
        assert abs(float(got32[k]) - want) <= 3e-4 * len(z), (m, float(got32[k]), want)
    # and the predictions are QM9's U0 (total energy in eV, atomrefs included): close on most
    # (methane, molecule 0, is off by 0.42 eV: the model is poor on the tiniest molecules)
    u0 = qm9_small.target_values("U0")[picks]
    assert np.median(np.abs(got64.numpy() - u0)) < 0.01


def _qm9pack_ids() -> np.ndarray:
    folder = qm9pack_data_dir()
    return np.concatenate([pd.read_csv(folder / f, usecols=["Index"])["Index"] for f in CSV_FILES])


@needs_model
def test_split_maps_to_the_same_molecules():
    parts = read_schnetpack_split(SHARED / "split.npz")
    assert {k: len(v) for k, v in parts.items()} == {
        "train": 100_000,
        "val": 10_000,
        "test": 23_885,
    }
    ids = _qm9pack_ids()
    rows, missing = map_to_rows(parts, ids)
    assert len(rows["test"]) == 23_380 and missing["test"] == 505
    assert sum(missing.values()) == 133_885 - len(ids) == 3_054
    first = int(parts["test"][0])
    assert ids[rows["test"][0]] == first + 1  # 0-based index i is dsgdb9nsd_{i+1}
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(np.isin(ids[rows[part]] - 1, parts[part]), True)


@needs_model
@pytest.mark.parametrize(
    ("path", "key", "value", "message"),
    [
        ("representation.interactions.2.cfconv.agg", "average", True, "normalises its filters"),
        ("representation.distance_expansion", "centered", True, "centred"),
        ("representation", "charged_systems", True, "charged"),
        ("representation.interactions.0.cfconv.f2out", "activation", None, "activation None"),
    ],
)
def test_unrepresentable_models_are_refused(legacy, path, key, value, message):
    mods = copy.deepcopy(legacy)
    mods.attributes[path][key] = value
    with pytest.raises(UnsupportedModelError, match=message) as err:
        from_schnetpack_legacy(mods)
    assert "\n" not in str(err.value)


@needs_model
def test_other_cutoffs_grids_and_shared_blocks_are_refused(legacy):
    mods = copy.deepcopy(legacy)
    mods.classes["representation.interactions.1.cfconv.cutoff_network"] = (
        "schnetpack.nn.cutoff.HardCutoff"
    )
    with pytest.raises(UnsupportedModelError, match="HardCutoff"):
        from_schnetpack_legacy(mods)
    mods = copy.deepcopy(legacy)
    mods.tensors["representation.distance_expansion.width"] = torch.full((50,), 0.5)
    with pytest.raises(UnsupportedModelError, match="widths are not the offset spacing"):
        from_schnetpack_legacy(mods)
    mods = copy.deepcopy(legacy)
    mods.aliases["representation.interactions.1"] = "representation.interactions.0"
    with pytest.raises(UnsupportedModelError, match="share weights"):
        from_schnetpack_legacy(mods)


@needs_model
def test_cli_import_records_the_explicit_split(qm9_dir, qm9_small, tmp_path):
    out = tmp_path / "spk.pt"
    common = ["--format", "schnetpack-legacy", "--weights", str(SHARED / "best_model")]
    r = run_cli(
        "import", *common, "--target", "U0", "--split", str(SHARED / "split.npz"),
        "--data-dir", str(qm9_dir), "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    model, ckpt = load_model(out)
    split = ckpt["data"]["split"]
    assert split["kind"] == "explicit"
    parts = read_schnetpack_split(SHARED / "split.npz")
    for part in ("train", "val", "test"):
        rows = split[part].numpy()
        assert np.isin(qm9_small.ids[rows] - 1, parts[part]).all()
    again = split_from_checkpoint(ckpt, len(qm9_small))
    np.testing.assert_array_equal(again.test, split["test"].numpy())
    r = run_cli("import", *common, "--target", "gap", "--cutoff", "5", "--out", str(out))
    assert r.returncode == 2 and "--cutoff" in r.stderr
    r = run_cli("import", *common, "--target", "gap", "--out", str(tmp_path / "gap.pt"))
    assert r.returncode == 2 and "energy_U0" in r.stderr and not (tmp_path / "gap.pt").exists()


@needs_model
def test_cli_import_refuses_a_split_part_absent_from_the_data(qm9_dir, qm9_small, tmp_path):
    """A part none of whose molecules is in the data set would make a checkpoint whose split
    chemprune refuses to read (an empty part): the import says so first."""
    absent = int(np.setdiff1d(np.arange(133_000, 133_885), qm9_small.ids - 1)[0])
    split = _npz(
        tmp_path / "split.npz", train_idx=np.arange(0, 200), val_idx=np.array([absent]),
        test_idx=np.arange(200, 400),
    )  # fmt: skip
    r = run_cli(
        "import", "--format", "schnetpack-legacy", "--weights", str(SHARED / "best_model"),
        "--target", "U0", "--split", str(split), "--data-dir", str(qm9_dir),
        "--out", str(tmp_path / "spk.pt"),
    )  # fmt: skip
    assert r.returncode == 2 and not (tmp_path / "spk.pt").exists()
    assert r.stderr == (
        f"chemprune: error: --split {split}: none of its val molecules is in this data set "
        "(give the --data-dir the model was trained on)\n"
    )


# ------------------------------------------------------------------ files that are refused
class _Payload:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


@pytest.mark.parametrize("kind", ["os.system", "eval"])
def test_a_payload_is_refused_and_never_runs(tmp_path, kind):
    marker = tmp_path / "MARKER"
    if kind == "os.system":
        payload = _Payload(os.system, f"touch {marker}")
    else:
        payload = _Payload(eval, f"open({str(marker)!r}, 'w').close()")
    evil = tmp_path / "best_model"
    model = torch.nn.Linear(2, 2)
    torch.save({"model": model, "x": payload}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafePickleError) as err:
        load_legacy_torch_file(evil)
    msg = str(err.value)
    assert "\n" not in msg and str(evil) in msg
    assert ("system" in msg) if kind == "os.system" else ("builtins.eval" in msg)
    assert not marker.exists()
    r = run_cli("import", "--format", "schnetpack-legacy", "--weights", str(evil),
                "--target", "U0", "--out", str(tmp_path / "x.pt"))  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "refused" in r.stderr and not marker.exists()


def test_whole_modules_become_inert_records(tmp_path):
    path = tmp_path / "linear.pt"
    lin = torch.nn.Linear(3, 2)
    torch.save({"m": lin}, path, _use_new_zipfile_serialization=False)
    obj = load_legacy_torch_file(path)
    rec = obj["m"]
    assert not isinstance(rec, torch.nn.Module)
    assert rec.global_name == "torch.nn.modules.linear.Linear"
    torch.testing.assert_close(rec.state["_parameters"]["weight"], lin.weight.detach())


def test_truncated_and_foreign_files_give_one_line(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"m": torch.nn.Linear(3, 2)}, good, _use_new_zipfile_serialization=False)
    data = good.read_bytes()
    cases = {
        "head": data[: len(data) // 3],
        "tail": data[:-5],
        "random": np.random.default_rng(0).bytes(4000),
        "pickle": pickle.dumps({"a": 1}),
    }
    zipped = tmp_path / "zip.pt"
    torch.save({"w": torch.zeros(2)}, zipped)
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    for path in [tmp_path / n for n in cases] + [zipped]:
        with pytest.raises(CheckpointError) as err:
            load_legacy_torch_file(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value), str(err.value)
    with pytest.raises(CheckpointError, match="zip-format"):
        load_legacy_torch_file(zipped)
    with pytest.raises(UnsupportedModelError, match="not a schnetpack model"):
        read_schnetpack_legacy(good)


# ------------------------------------------------------------------ split files
def _npz(path: Path, **parts) -> Path:
    np.savez(path, **parts)
    return path


def test_ambiguous_split_files_are_refused(tmp_path):
    ok = dict(train_idx=np.arange(0, 6), val_idx=np.arange(6, 8), test_idx=np.arange(8, 10))
    parts = read_schnetpack_split(_npz(tmp_path / "ok.npz", **ok))
    rows, missing = map_to_rows(parts, np.array([1, 2, 4, 9, 10]))  # molecule numbers
    assert rows["train"].tolist() == [0, 1, 2] and rows["test"].tolist() == [3, 4]
    assert missing == {"train": 3, "val": 2, "test": 0}
    bad = {
        "no test_idx": {k: v for k, v in ok.items() if k != "test_idx"},
        "outside": {**ok, "test_idx": np.array([8, 133_885])},
        "share 1 molecules": {**ok, "val_idx": np.array([5, 6])},
        "repeats": {**ok, "test_idx": np.array([8, 8])},
    }
    for message, content in bad.items():
        with pytest.raises(CheckpointError, match=message) as err:
            read_schnetpack_split(_npz(tmp_path / "bad.npz", **content))
        assert "\n" not in str(err.value)


def test_split_from_checkpoint_takes_an_explicit_split():
    ckpt = {
        "data": {
            "split": {
                "kind": "explicit",
                **{
                    p: torch.tensor(v, dtype=torch.int32)
                    for p, v in (("train", [4, 0, 2]), ("val", [1]), ("test", [3]))
                },  # fmt: skip
            }
        }
    }
    split = split_from_checkpoint(ckpt, 5)
    assert split.train.tolist() == [4, 0, 2] and split.test.tolist() == [3]
    with pytest.raises(ValueError, match="does not have"):
        split_from_checkpoint(ckpt, 4)
