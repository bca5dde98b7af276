"""chemprune prune on a tiny trained SchNet: every engine, structured shrink, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chemprune.molecules.checkpoint import load_model
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "method, extra",
    [
        ("magnitude", ["--structured"]),
        ("magnitude", []),
        ("olmp", ["--budget", "8"]),
        ("autoprune", ["--structured", "filter_hidden", "--lam", "1e-3"]),
        ("attention", ["--structured", "--lam", "1e-3"]),
        ("cdc", ["--structured", "--function", "t_statistic", "--target-bins", "3"]),
    ],
)
def test_prune_each_engine(trained, qm9_dir, tmp_path, method, extra):
    out = tmp_path / "pruned.pt"
    r = run_cli(
        "prune",
        "--model",
        str(trained),
        "--data-dir",
        str(qm9_dir),
        "--method",
        method,
        "--sparsity",
        "0.5",
        "--finetune-minutes",
        "0.05",
        "--out",
        str(out),
        "--json",
        "--no-progress",
        "--threads",
        "1",
        *extra,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    model, ckpt = load_model(out)
    assert ckpt["pruning"]["method"] == method
    if "--structured" in extra:
        key = "filter_hidden_channels" if "filter_hidden" in extra else "filter_channels"
        assert report["after"][key] == [8, 8] and ckpt["config"][key] == [8, 8]
        assert report["after"]["params"] < report["before"]["params"]
        assert report["after"]["macs_per_batch64"] < report["before"]["macs_per_batch64"]
    else:
        assert report["after"]["nonzero_params"] < 0.8 * report["before"]["nonzero_params"]
    # the pruned checkpoint is used by predict and evaluate unchanged
    r = run_cli("predict", "--model", str(out), "--smiles", "CCO", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["unit"] == "eV"
    r = run_cli("evaluate", "--model", str(out), "--data-dir", str(qm9_dir), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 24


def test_target_macs_with_atom_basis_and_filters(trained, qm9_dir, tmp_path):
    out = tmp_path / "pruned.pt"
    r = run_cli(
        "prune", "--model", str(trained), "--data-dir", str(qm9_dir), "--method", "attention",
        "--target-macs", "0.6", "--structured", "filter+atom_basis", "--finetune-steps", "4",
        "--finetune-minutes", "5", "--out", str(out), "--json", "--no-progress", "--threads", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    before, after = report["before"], report["after"]
    assert after["macs_per_batch64"] <= 0.6 * before["macs_per_batch64"]
    assert after["hidden_channels"] < before["hidden_channels"]
    assert all(
        a < b for a, b in zip(after["filter_channels"], before["filter_channels"], strict=True)
    )
    assert report["target_macs"] == 0.6 and report["sparsity"] < 0.9
    model, ckpt = load_model(out)
    assert ckpt["config"]["hidden_channels"] == after["hidden_channels"]
    r = run_cli("evaluate", "--model", str(out), "--data-dir", str(qm9_dir), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["n"] == 24


def test_prune_errors(trained, qm9_dir, tmp_path):
    common = ["--model", str(trained), "--data-dir", str(qm9_dir), "--out", str(tmp_path / "p.pt")]
    r = run_cli("prune", *common, "--method", "magnitude", "--sparsity", "1.5")
    assert (
        r.returncode == 2
        and "argument --sparsity: must be a finite number >= 0 and < 1" in r.stderr
    )
    r = run_cli("prune", *common, "--method", "l0", "--sparsity", "0.5")
    assert r.returncode == 2 and "invalid choice: 'l0'" in r.stderr
    r = run_cli("prune", *common, "--method", "magnitude", "--sparsity", "0.99", "--structured")
    assert r.returncode == 2 and "no channel" in r.stderr
    r = run_cli("prune", *common, "--method", "magnitude", "--sparsity", "0.5", "--blocks", "7")
    assert r.returncode == 2 and "blocks [7] do not exist" in r.stderr
    r = run_cli("prune", *common, "--method", "magnitude", "--target-macs", "0.5")
    assert r.returncode == 2 and "--target-macs needs --structured" in r.stderr
    r = run_cli(
        "prune", *common, "--method", "magnitude", "--target-macs", "0.01", "--structured"
    )  # filters alone cannot remove 99% of the work
    assert r.returncode == 2 and "cannot reach 0.01 of the MACs" in r.stderr
    r = run_cli("prune", *common, "--method", "magnitude", "--sparsity", "0.5", "--function", "snr")
    assert r.returncode == 2 and "--function is for engines that score from data" in r.stderr
    cdc = [*common, "--method", "cdc", "--sparsity", "0.5", "--structured"]
    r = run_cli("prune", *cdc, "--function", "add(mu_in")
    assert r.returncode == 2 and "--function: not a pruning-function expression" in r.stderr
    r = run_cli("prune", *cdc, "--function", str(tmp_path / "none.json"))
    assert r.returncode == 2 and "none.json: no such file" in r.stderr
    r = run_cli("prune", *cdc, "--target-bins", "1")
    assert r.returncode == 2 and "--target-bins must be at least 2" in r.stderr
    r = run_cli("prune", *common, "--method", "magnitude", "--sparsity", "0.5", "--structured", "x")
    assert r.returncode == 2 and "--structured takes kernel" in r.stderr
    foreign = tmp_path / "foreign.pt"
    import torch

    torch.save({"state_dict": {}}, foreign)
    r = run_cli(
        "prune",
        "--model",
        str(foreign),
        "--method",
        "magnitude",
        "--sparsity",
        "0.5",
        "--out",
        str(tmp_path / "x.pt"),
    )
    assert r.returncode == 2 and "not a chemprune SchNet checkpoint" in r.stderr
    assert not (tmp_path / "p.pt").exists()


def test_export_runs_without_chemprune(trained, qm9_dir, tmp_path):
    pruned = tmp_path / "p.pt"
    r = run_cli(
        "prune",
        "--model",
        str(trained),
        "--data-dir",
        str(qm9_dir),
        "--method",
        "magnitude",
        "--sparsity",
        "0.5",
        "--structured",
        "--out",
        str(pruned),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    ts = tmp_path / "model.ts"
    r = run_cli("export", "--model", str(pruned), "--out", str(ts), "--format", "torchscript")
    assert r.returncode == 0, r.stderr
    import subprocess
    import sys

    import torch

    z = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])
    pos = torch.randn(9, 3, generator=torch.Generator().manual_seed(0)) * 1.2
    batch = torch.zeros(9, dtype=torch.long)
    model, _ = load_model(pruned)
    want = float(model(z, pos, batch).detach())
    code = (
        "import sys, json; sys.modules['chemprune'] = None\n"  # any chemprune import would fail
        "import torch\n"
        f"m = torch.jit.load({str(ts)!r}, _extra_files=(e := {{'chemprune.json': ''}}))\n"
        f"z = torch.tensor({z.tolist()}); pos = torch.tensor({pos.tolist()})\n"
        "out = m(z, pos, torch.zeros(len(z), dtype=torch.long))\n"
        "print(json.dumps({'value': float(out), 'meta': json.loads(e['chemprune.json'])}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["value"] == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert got["meta"]["target"]["name"] == "gap" and got["meta"]["config"]["filter_channels"] == [
        8,
        8,
    ]


def test_export_program_runs_without_chemprune_with_forces(trained, tmp_path):
    import subprocess
    import sys

    import torch

    prog = tmp_path / "model.pt2"
    r = run_cli("export", "--model", str(trained), "--out", str(tmp_path / "model.ts"))
    assert r.returncode == 2 and "a torch.export program is a .pt2 file" in r.stderr
    r = run_cli("export", "--model", str(trained), "--out", str(prog))
    assert r.returncode == 0, r.stderr
    assert "checked against the eager model" in r.stdout
    model, _ = load_model(trained)
    # three molecules of different sizes in one batch, and a lone atom
    g = torch.Generator().manual_seed(3)
    cases = [
        (torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1, 8, 1, 1, 7, 1, 1, 1]),
         torch.tensor([0] * 9 + [1] * 3 + [2] * 4)),
        (torch.tensor([6]), torch.tensor([0])),
    ]  # fmt: skip
    want = []
    for z, batch in cases:
        pos = (torch.randn(len(z), 3, generator=g) * 1.3).requires_grad_(True)
        y = model(z, pos, batch)
        (f,) = torch.autograd.grad(y.sum(), pos)
        want.append((z.tolist(), pos.detach().tolist(), batch.tolist(), y.tolist(), f.tolist()))
    code = (
        "import sys, json; sys.modules['chemprune'] = None\n"  # any chemprune import would fail
        "import torch\n"
        f"e = {{'chemprune.json': ''}}\n"
        f"m = torch.export.load({str(prog)!r}, extra_files=e).module()\n"
        f"out = []\n"
        f"for z, pos, batch, _, _ in {want!r}:\n"
        "    pos = torch.tensor(pos, requires_grad=True)\n"
        "    y = m(torch.tensor(z), pos, torch.tensor(batch))\n"
        "    (f,) = torch.autograd.grad(y.sum(), pos)\n"
        "    out.append((y.tolist(), f.tolist()))\n"
        "print(json.dumps({'out': out, 'meta': json.loads(e['chemprune.json'])}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["meta"]["format"] == "export" and got["meta"]["target"]["name"] == "gap"
    for (y, f), (*_, wy, wf) in zip(got["out"], want, strict=True):
        np.testing.assert_allclose(y, wy, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(f, wf, rtol=1e-5, atol=1e-5)


def _prune(trained, qm9_dir, out, *extra):
    return run_cli(
        "prune", "--model", str(trained), "--data-dir", str(qm9_dir), "--finetune-steps", "20",
        "--finetune-minutes", "5", "--out", str(out), "--json", "--no-progress", "--threads", "1",
        *extra,
    )  # fmt: skip


def test_ssl_removes_a_block_and_force_splits_layers_and_they_compose(trained, qm9_dir, tmp_path):
    """ssl with depth: a third of the 2 blocks rounds to one block removed (and half of each
    kernel); force on the result: every atom-wise layer split at the rank holding 60% of its
    energy (tiny layers: only a low rank saves work). Both files predict and evaluate unchanged."""
    ssl = tmp_path / "ssl.pt"
    r = _prune(trained, qm9_dir, ssl, "--method", "ssl", "--structured", "kernel+depth",
               "--sparsity", "0.5", "--strength", "1e-3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert len(report["blocks_removed"]) == 1 and report["finetune"]["regularized"]["steps"] == 10
    model, ckpt = load_model(ssl)
    assert ckpt["config"]["num_interactions"] == 1 and len(model.interactions) == 1
    low = tmp_path / "low.pt"
    r = _prune(ssl, qm9_dir, low, "--method", "force", "--rank-energy", "0.6",
               "--layers", "atomwise")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    model, ckpt = load_model(low)
    assert report["low_rank"], report["ranks"]
    assert set(report["low_rank"]) == set(ckpt["config"]["low_rank"])
    assert all(r < full for full, r in report["low_rank"].values())
    for out in (ssl, low):
        r = run_cli("predict", "--model", str(out), "--smiles", "CCO", "--json")
        assert r.returncode == 0 and np.isfinite(json.loads(r.stdout)["value"])
    r = _prune(trained, qm9_dir, tmp_path / "x.pt", "--method", "magnitude", "--rank-energy", "0.9")
    assert r.returncode == 2 and "--rank-energy is for --method force" in r.stderr
    r = _prune(trained, qm9_dir, tmp_path / "x.pt", "--method", "force", "--sparsity", "0.5",
               "--structured")  # fmt: skip
    assert r.returncode == 2 and "say which with --layers" in r.stderr


def test_prune_on_a_grid_then_tabulate_counts_the_tabulated_work(trained, qm9_dir, tmp_path):
    from chemprune.molecules.data.batching import MoleculeSet
    from chemprune.molecules.data.qm9 import read_qm9_csv
    from chemprune.pipeline.compress_schnet import model_stats

    out = tmp_path / "pruned_tab.pt"
    r = run_cli(
        "prune", "--model", str(trained), "--data-dir", str(qm9_dir), "--method", "attention",
        "--target-macs", "0.5", "--structured", "filter", "--finetune-steps", "4",
        "--finetune-minutes", "5", "--filter-grid", "64", "--tabulate", "--out", str(out),
        "--json", "--no-progress", "--threads", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(counted tabulated)" in r.stdout
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["filter_grid"] == 64 and report["tabulation"]["passed"]
    tab = report["tabulated"]
    dense, _ = load_model(trained)
    data = read_qm9_csv(sorted(qm9_dir.glob("*.csv")))
    mset = MoleculeSet(data.z, data.pos, data.ptr)
    val = load_model(out)[1]["data"]["split"]["val"].numpy()
    dense_tab = model_stats(dense.tabulated(128), mset, val)
    # the target counted the tabulated runtime: at most half of the dense model's tabulated MACs
    assert tab["macs_per_batch64"] <= 0.5 * dense_tab["macs_per_batch64"]
    model, ckpt = load_model(out)
    assert set(model.block_kinds) == {"tabulated"} and model.filter_grid == 0
    assert model_stats(model, mset, val)["macs_per_batch64"] == tab["macs_per_batch64"]
    # the MAC count equals the structure: 4F per pair for the interpolation, the linear layers
    b = mset.collate(val[:64])
    with torch.no_grad():
        from chemprune.molecules.models.graph import radius_pairs

        pairs = radius_pairs(b.pos, b.batch, model.cutoff).size(1)
    atoms, h = b.z.numel(), model.hidden_channels
    want = sum(
        pairs * 4 * blk.filter_channels
        + atoms * (h * blk.filter_channels + blk.filter_channels * blk.interaction_channels
                   + blk.interaction_channels * h)
        for blk in model.interactions
    ) + atoms * (h * model.lin1.out_features + model.lin1.out_features)  # fmt: skip
    assert tab["macs_per_batch64"] == want
    r = run_cli("prune", "--model", str(trained), "--method", "magnitude", "--sparsity", "0.5",
                "--knots", "64", "--out", str(tmp_path / "x.pt"))  # fmt: skip
    assert r.returncode == 2 and "--knots is for --tabulate" in r.stderr


def test_prune_options_become_the_settings_the_library_runs(tmp_path, capsys):
    from chemprune.cli import build_parser
    from chemprune.cli.errors import CliError
    from chemprune.cli.prune import settings_from_args

    base = ["prune", "--model", "m.pt", "--method", "magnitude", "--out", str(tmp_path / "o.pt")]
    args = build_parser().parse_args(
        [*base, "--sparsity", "0.25", "--structured", "filter", "--refit", "f2out,out",
         "--refit-molecules", "512", "--lr", "3e-5", "--blocks", "0,2", "--finetune-steps", "9"]
    )  # fmt: skip
    settings, job = settings_from_args(args)
    assert (settings.method, settings.sparsity, settings.kind) == ("magnitude", 0.25, "filter")
    assert settings.refit == ("f2out", "out") and settings.refit_molecules == 512
    assert settings.blocks == (0, 2) and settings.lr == 3e-5 and settings.finetune_steps == 9
    assert settings.check() is settings and job.model.name == "m.pt" and not job.tabulate
    with pytest.raises(SystemExit):  # an unknown layer is refused while parsing
        build_parser().parse_args([*base, "--sparsity", "0.25", "--refit", "in2f"])
    assert "--refit takes f2out or out" in capsys.readouterr().err
    args = build_parser().parse_args([*base, "--sparsity", "0.2", "--structured", "atom_basis",
                                      "--refit", "f2out"])  # fmt: skip
    with pytest.raises(CliError, match="--refit keeps every layer's outputs"):
        settings_from_args(args)
