"""CLI smoke runs: prepare, synth, train (-train_steps 10), average, translate, evaluate, predict."""

import json
import zipfile

import pytest

from reaction_nmt.cli import main
from tests.reaction_nmt.conftest import MAPPED_MIT


def test_prepare_cli_reports_counts(liu_smi_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert (
        main(["prepare", "--format", "liu-smi", "--data", str(liu_smi_dir), "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "format 1" in text and "invalid_smiles 1" in text
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["written"] == 3


def test_prepare_cli_bad_input_exits_2(tmp_path, capsys):
    code = main(
        [
            "prepare",
            "--format",
            "mapped",
            "--train",
            str(tmp_path / "x.txt"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "x.txt does not exist" in capsys.readouterr().err


def test_prepare_cli_single_csv_with_split_column(csv_file, tmp_path):
    out = tmp_path / "o"
    argv = ["prepare", "--format", "csv", "--data", str(csv_file), "--split-column", "split"]
    assert main([*argv, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "test"}  # the CSV has no 'valid' rows
    assert main([*argv[:-2], "--split-column", "rxn_smiles", "--out", str(out)]) == 2
    argv = ["prepare", "--format", "csv", "--data", str(csv_file), "--out", str(out)]
    assert main(argv) == 2  # a single CSV needs --split-column


def test_download_from_a_local_archive(tmp_path, capsys):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"data/{split}.txt", "".join(line + "\n" for line in MAPPED_MIT))
    data, out = tmp_path / "uspto_mit", tmp_path / "prepared"
    argv = ["prepare", "--format", "mapped", "--download", "--url", archive.as_uri()]
    assert main([*argv, "--data", str(data), "--out", str(out), "--mode", "separated"]) == 0
    assert (data / "download.json").is_file()
    assert (out / "src-train.txt").read_text().splitlines()[0] == "C C ( = O ) Cl . C C N > Cl C Cl"
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    argv = ["prepare", "--format", "mapped", "--download", "--url", bad.as_uri()]
    assert main([*argv, "--data", str(tmp_path / "d2"), "--out", str(out)]) == 2
    assert "not a zip archive" in capsys.readouterr().err


def test_synth_cli_writes_csv(tmp_path):
    assert main(["synth", "--out", str(tmp_path)]) == 0
    header = (tmp_path / "train.csv").read_text().splitlines()[0]
    assert header == "rxn_smiles,template"


def test_train_cli_wrote_config_and_info(tiny_run):
    import yaml

    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["train_steps"] == 10 and config["num_workers"] == 0
    info = json.loads((tiny_run / "reaction_nmt.json").read_text())
    assert info["preset"] == "tiny" and info["mode"] == "mixed"


def test_train_cli_rejects_unknown_option_and_missing_data(synthetic_data, tmp_path, capsys):
    argv = [
        "train",
        "--data",
        str(synthetic_data),
        "--out",
        str(tmp_path / "r"),
        "--preset",
        "tiny",
    ]
    assert main([*argv, "-no_such_option", "3"]) == 2
    assert "no_such_option" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 2


def test_average_translate_evaluate(tiny_run, synthetic_data, tmp_path, capsys):
    avg = tmp_path / "avg.pt"
    assert main(["average", "--run", str(tiny_run), "--last", "2", "--out", str(avg)]) == 0
    pred, src, tgt = tmp_path / "pred.txt", tmp_path / "src.txt", tmp_path / "tgt.txt"
    n_test = 6  # a 10-step model writes long nonsense: translate a few sources only
    for name, path in (("src", src), ("tgt", tgt)):
        head = (synthetic_data / f"{name}-test.txt").read_text().splitlines()[:n_test]
        path.write_text("\n".join(head) + "\n")
    argv = ["translate", "--model", str(avg), "--src", str(src), "--max-length", "40"]
    assert main([*argv, "--out", str(pred), "--beam-size", "3", "--n-best", "2"]) == 0
    assert len(pred.read_text().splitlines()) == 2 * n_test
    capsys.readouterr()
    result = tmp_path / "r.json"
    argv = ["evaluate", "--predictions", str(pred), "--targets", str(tgt), "--n-best", "2"]
    assert main([*argv, "--json", str(result)]) == 0
    assert "top-1" in capsys.readouterr().out
    scored = json.loads(result.read_text())
    assert scored["n"] == n_test and set(scored["top_k"]) == {"1", "2", "3", "5"}
    argv = ["evaluate", "--model", str(avg), "--data", str(synthetic_data), "--limit", "5"]
    argv += ["--max-length", "40", "--out-dir", str(tmp_path)]
    assert main([*argv, "--beam-size", "2", "--n-best", "2", "--json", str(result)]) == 0
    scored = json.loads(result.read_text())
    assert scored["n"] == 5 and scored["translation"]["reactions_per_s"] > 0


def test_predict_ranks_products_and_names_invalid_molecules(tiny_run, capsys):
    model = str(tiny_run / "model_step_10.pt")
    argv = ["predict", "--model", model, "CC(=O)O.NCC", "CC(=O)O.C1CC", "--json"]
    code = main([*argv, "--max-length", "40"])
    assert code == 1
    captured = capsys.readouterr()
    assert "invalid SMILES 'C1CC'" in captured.err and "CC(=O)O.C1CC" in captured.err
    out = json.loads(captured.out)
    assert [o["input"] for o in out] == ["CC(=O)O.NCC"]
    ranks = [p["rank"] for p in out[0]["products"]]
    assert ranks == list(range(1, len(ranks) + 1)) and ranks
    scores = [p["score"] for p in out[0]["products"]]
    assert scores == sorted(scores, reverse=True)
    assert (
        main(["predict", "--model", model, "CC(=O)O.NCC", "--n-best", "2", "--beam-size", "2"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CC(=O)O.NCC" and lines[1].startswith("  1. ") and "score" in lines[1]


def test_predict_with_broken_model_exits_2(tmp_path, capsys):
    bad = tmp_path / "m.pt"
    bad.write_bytes(b"garbage")
    assert main(["predict", "--model", str(bad), "CCO"]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_unknown_arguments_rejected_outside_train():
    with pytest.raises(SystemExit):
        main(["synth", "--out", "x", "-train_steps", "3"])


def test_predict_input_helpers():
    from reaction_nmt.predict import InvalidInput, prepare_input, rank_products

    assert prepare_input("OCC.CC(=O)O", mode="mixed") == "C C ( = O ) O . C C O"
    assert prepare_input("OCC.CC(=O)O>O", mode="separated") == "C C ( = O ) O . C C O > O"
    assert prepare_input("OCC", mode="separated") == "C C O >"
    with pytest.raises(InvalidInput, match="invalid SMILES 'c1cc'"):
        prepare_input("CCO.c1cc")
    ranked = rank_products([("C C O", -0.1), ("O C C", -0.5), ("C (", -0.7), ("C C N", -1.0)])
    assert [r["smiles"] for r in ranked] == ["CCO", "C(", "CCN"]
    assert [r["valid"] for r in ranked] == [True, False, True]


def test_train_cli_resume_continues_from_last_checkpoint(
    tiny_run, synthetic_data, tmp_path, capsys
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    argv = ["train", "--data", str(synthetic_data), "--out", str(run), "--preset", "tiny"]
    assert (
        main([*argv, "--resume", "--threads", "1", "-train_steps", "12", "-batch_size", "256"]) == 0
    )
    assert "trained 12 steps" in capsys.readouterr().out
    assert (run / "model_step_12.pt").is_file()
    assert "model_step_10.pt" in (run / "config.yaml").read_text()  # train_from
