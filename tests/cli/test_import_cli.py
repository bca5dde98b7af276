"""chemprune import: a PyG SchNet state_dict becomes a checkpoint that prune and export take."""

from __future__ import annotations

import json

import pytest
import torch

from chemprune.molecules.checkpoint import load_model
from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.interop.pyg import make_pyg_schnet
from tests.conftest import run_cli

PYG = dict(hidden_channels=16, num_filters=8, num_interactions=2, num_gaussians=10, cutoff=5.0)


@pytest.fixture(scope="module")
def pyg_weights(tmp_path_factory):
    torch.manual_seed(0)
    ref = make_pyg_schnet(**PYG, mean=4.0, std=1.5, readout="mean").eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("pyg") / "schnet_state.pt"
    torch.save(ref.state_dict(), path)
    return ref, path


def test_import_then_prune_and_evaluate(pyg_weights, qm9_dir, qm9_small, tmp_path):
    ref, weights = pyg_weights
    out = tmp_path / "imported.pt"
    r = run_cli(
        "import", "--weights", str(weights), "--target", "gap", "--cutoff", "5", "--readout",
        "mean", "--mean", "4.0", "--std", "1.5", "--data-dir", str(qm9_dir), "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    model, ckpt = load_model(out)
    assert ckpt["config"]["hidden_channels"] == 16 and ckpt["config"]["filter_channels"] == [8, 8]
    b = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr).collate(list(range(40)))
    with torch.no_grad():
        want = ref(b.z, b.pos, b.batch).view(-1)
        torch.testing.assert_close(model(b.z, b.pos, b.batch), want, atol=1e-5, rtol=1e-5)
    pruned = tmp_path / "pruned.pt"
    r = run_cli(
        "prune", "--model", str(out), "--data-dir", str(qm9_dir), "--method", "attention",
        "--sparsity", "0.5", "--structured", "--finetune-steps", "2", "--finetune-minutes", "1",
        "--out", str(pruned), "--json", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["after"]["filter_channels"] == [4, 4]
    r = run_cli("evaluate", "--model", str(pruned), "--data-dir", str(qm9_dir), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 24


def test_import_errors(pyg_weights, qm9_dir, tmp_path):
    _, weights = pyg_weights
    common = ["--target", "gap", "--data-dir", str(qm9_dir), "--out", str(tmp_path / "x.pt")]
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2, 2)}, other)
    r = run_cli("import", "--weights", str(other), *common)
    assert r.returncode == 2 and "not a PyG SchNet state_dict: no embedding.weight" in r.stderr
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    r = run_cli("import", "--weights", str(pickled), *common)
    assert r.returncode == 2 and "holds objects other than tensors and plain data" in r.stderr
    assert "weights_only" not in r.stderr and r.stderr.count("\n") == 1
    state = torch.load(weights, weights_only=True)
    state.pop("interactions.1.lin.bias")
    torch.save(state, tmp_path / "cut.pt")
    r = run_cli("import", "--weights", str(tmp_path / "cut.pt"), *common)
    assert r.returncode == 2 and "does not fit a PyG SchNet" in r.stderr
    r = run_cli("import", "--weights", str(weights), "--target", "nope", *common[2:])
    assert r.returncode == 2 and "nope" in r.stderr
    assert not (tmp_path / "x.pt").exists()
