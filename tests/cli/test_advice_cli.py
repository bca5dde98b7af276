"""Messages a user can act on: advice that is true, invalid splits inside checkpoints, names
from files printed escaped, charged molecules, library warnings kept off the terminal."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from tests.cli.conftest import TINY
from tests.conftest import run_cli


def test_diverging_run_advice_fits_what_was_written(qm9_dir, tmp_path):
    run = ["train", "--data-dir", str(qm9_dir), "--target", "gap", "--epochs", "2", *TINY]
    tail = "start again with a lower --lr than 1e+09 (or clip gradients: --max-grad-norm).\n"
    r = run_cli(*run, "--lr", "1e9", "--out", str(tmp_path / "a"))
    assert r.returncode == 3 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("chemprune: error: loss became ")
    assert r.stderr.endswith(f"; nothing was saved from this step; {tail}")
    assert not (tmp_path / "a" / "last.pt").exists()
    # a last.pt saved before the bad step: a resume would keep --lr, so it is not advised
    last = tmp_path / "b" / "last.pt"
    r = run_cli(*run, "--lr", "1e9", "--checkpoint-every", "1", "--out", str(tmp_path / "b"))
    assert r.returncode == 3 and last.exists() and r.stderr.count("\n") == 1
    assert r.stderr.endswith(
        f"; nothing was saved from this step; {last} holds the state before it, but a resume "
        "keeps --lr 1e+09: start again in another --out with a lower --lr (or clip gradients: "
        "--max-grad-norm).\n"
    )
    r = run_cli(*run, "--lr", "1e-4", "--resume", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and f"cannot resume {last} with different settings" in r.stderr


def _split_variant(trained, path, **change):
    from chemprune.common.atomic import atomic_save
    from chemprune.molecules.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained)  # (the digest does not cover the split: it stays valid)
    split = {**ckpt["data"]["split"], **change}
    atomic_save({**ckpt, "data": {**ckpt["data"], "split": split}}, path)
    return ckpt["data"]["split"]


def _ids(values):
    return torch.tensor(values, dtype=torch.int32)


@pytest.mark.parametrize(
    ("command", "variant", "what"),
    [
        ("evaluate", "negative", "val holds the negative id -3"),
        ("tabulate", "float", "test ids are float32, not integers"),
        ("prune", "empty", "val is empty"),
        ("evaluate", "repeated", "val repeats id {v0}"),
        ("tabulate", "beyond", "val names molecule 500, beyond the 240 of the data set it records"),
        ("prune", "shared", "id {t0} is in both train and val"),
        ("evaluate", "list", "test is a list, not a tensor of molecule ids"),
    ],
)
def test_invalid_split_is_one_line(trained, qm9_dir, tmp_path, command, variant, what):
    from chemprune.molecules.checkpoint import load_checkpoint

    split = load_checkpoint(trained)["data"]["split"]
    val, test = split["val"].tolist(), split["test"].tolist()
    change = {
        "negative": {"val": _ids([-3, *val[1:]])},
        "float": {"test": split["test"].float()},
        "empty": {"val": _ids([]), "sizes": [192, 0, 24]},
        "repeated": {"val": _ids([val[0], *val[:-1]])},
        "beyond": {"val": _ids([500, *val[1:]])},
        "shared": {"kind": "explicit", "train": _ids([test[0]]), "val": _ids([test[0], *val[1:]]),
                   "sizes": [1, 24, 24]},
        "list": {"test": test},
    }[variant]  # fmt: skip
    model = tmp_path / f"{variant}.pt"
    _split_variant(trained, model, **change)
    extra = {
        "evaluate": [],
        "tabulate": ["--out", str(tmp_path / "t.pt")],
        "prune": ["--method", "magnitude", "--sparsity", "0.5", "--finetune-steps", "1",
                  "--no-progress", "--out", str(tmp_path / "p.pt")],
    }[command]  # fmt: skip
    r = run_cli(command, "--model", str(model), "--data-dir", str(qm9_dir), *extra)
    what = what.format(v0=val[0], t0=test[0])
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"chemprune: error: checkpoint {model} has an invalid split: {what}\n"


def test_names_from_a_file_are_printed_escaped(trained, qm9_dir, tmp_path):
    from chemprune.common.atomic import atomic_save
    from chemprune.molecules.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained)
    ckpt.pop("integrity")  # a file from before digests: nothing vouches for its names
    unit = "eV\x1b[31m"
    atomic_save({**ckpt, "target": {**ckpt["target"], "unit": unit}}, tmp_path / "unit.pt")
    name = "gap\x1b]0;owned\x07\u202e"
    atomic_save({**ckpt, "target": {**ckpt["target"], "name": name}}, tmp_path / "name.pt")
    warning = (
        "chemprune: warning: {} carries no digest (written before chemprune checkpoints had "
        "one): its integrity cannot be checked\n"
    )
    r = run_cli("evaluate", "--model", str(tmp_path / "unit.pt"), "--data-dir", str(qm9_dir))
    assert r.returncode == 0 and r.stderr == warning.format(tmp_path / "unit.pt")
    assert r.stdout.startswith("gap on 24 test molecules: MAE ") and "\x1b" not in r.stdout
    assert r.stdout.count(" eV\\x1b[31m") == 2
    r = run_cli("predict", "--model", str(tmp_path / "name.pt"), "--smiles", "CCO")
    assert r.returncode == 0 and r.stderr == warning.format(tmp_path / "name.pt")
    assert r.stdout.startswith("CCO\tgap\\x1b]0;owned\\x07\\u202e = ") and "\x1b" not in r.stdout
    r = run_cli("predict", "--model", str(tmp_path / "name.pt"), "--smiles", "CCO", "--json")
    assert json.loads(r.stdout)["target"] == name and "\x1b" not in r.stdout


def test_charged_molecules_refused_one_by_one(trained):
    r = run_cli(
        "predict", "--model", str(trained), "--smiles", "CCO", "--smiles", "[NH4+]",
        "--smiles", "C[N+](=O)[O-]", "--smiles", "[C+5]",
    )  # fmt: skip
    assert r.returncode == 1
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["CCO", "C[N+](=O)[O-]"]
    assert r.stderr == (
        "chemprune: error: SMILES '[NH4+]' has net charge +1; the models are for neutral "
        "molecules\n"
        "chemprune: error: SMILES '[C+5]' has net charge +5; the models are for neutral "
        "molecules\n"
    )


def test_untrusted_pickle_refused_without_torchs_advice(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    r = run_cli("predict", "--model", str(tmp_path / "module.pt"), "--smiles", "CCO")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        f"chemprune: error: model file {tmp_path / 'module.pt'} holds objects other than tensors "
        "and plain data (it names the Python object torch.nn.modules.linear.Linear) and is not "
        "loaded: every file chemprune writes holds tensors and plain data only (a model pickled "
        "whole by another program? save its state_dict there)\n"
    )


def test_library_warnings_silenced_unless_debug(monkeypatch, capsys):
    from chemprune.cli import evaluate, main

    def noisy(args):
        warnings.warn("a library's notice\nover\nseveral lines", UserWarning, stacklevel=1)
        raise ValueError(f"model file {args.model} is unusable")

    monkeypatch.setattr(evaluate, "run_evaluate", noisy)
    assert main(["evaluate", "--model", "m.pt"]) == 2
    assert capsys.readouterr().err == "chemprune: error: model file m.pt is unusable\n"
    with pytest.warns(UserWarning, match="a library's notice"), pytest.raises(ValueError):
        main(["--debug", "evaluate", "--model", "m.pt"])


def test_error_lines_escape_what_they_quote(monkeypatch, capsys):
    from chemprune.cli import evaluate, main
    from chemprune.common.options import printable

    def hostile(args):
        raise KeyError("unknown target 'g\x1b[2Jap'\nsecond line")

    monkeypatch.setattr(evaluate, "run_evaluate", hostile)
    assert main(["evaluate", "--model", "m.pt"]) == 2
    assert (
        capsys.readouterr().err
        == "chemprune: error: unknown target 'g\\x1b[2Jap'\\x0asecond line\n"
    )
    assert printable("é\t\U000e0001x") == "é\\x09\\U000e0001x"
