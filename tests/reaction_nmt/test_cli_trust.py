"""reaction-nmt refuses what would damage a user's files and never ends in a traceback."""

from __future__ import annotations

import gzip
import shutil

import pytest

from reaction_nmt.cli import main
from tests.reaction_nmt.conftest import TINY_TRAIN


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_translate_out_equal_to_src_refused(tiny_run, synthetic_data, tmp_path, capsys):
    src = tmp_path / "src.txt"
    shutil.copy(synthetic_data / "src-test.txt", src)
    before = src.read_bytes()
    model = tiny_run / "model_step_10.pt"
    assert main(["translate", "--model", str(model), "--src", str(src), "--out", str(src)]) == 2
    assert "--out" in _err(capsys) and src.read_bytes() == before
    out = tmp_path / "pred.txt"
    argv = ["translate", "--model", str(model), "--src", str(src), "--out", str(out)]
    assert main([*argv, "--n-best", "6", "--beam-size", "5"]) == 2
    assert "--n-best 6 is larger than --beam-size 5" in _err(capsys)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--beam-size", "0"])
    assert exit_.value.code == 2 and "argument --beam-size: must be an integer >= 1" in _err(capsys)


def test_average_out_onto_an_input_refused(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    last = run / "model_step_10.pt"
    before = last.read_bytes()
    assert main(["average", "--run", str(run), "--last", "2", "--out", str(last)]) == 2
    assert "same file as --run (model_step_10.pt)" in _err(capsys)
    assert last.read_bytes() == before


def test_train_into_an_existing_run_refused_and_bad_resume_rewrites_nothing(
    tiny_run, synthetic_data, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    snapshot = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    argv = ["train", "--data", str(synthetic_data), "--out", str(run), "--threads", "1"]
    assert main([*argv, "--preset", "tiny", *TINY_TRAIN]) == 2
    err = _err(capsys)
    assert "already holds a run (config.yaml" in err and "pass --resume to continue it" in err
    assert main([*argv, "--preset", "compact", "--resume"]) == 2
    assert "was trained with --preset tiny, not compact" in _err(capsys)
    (run / "model_step_10.pt").write_bytes(b"not a checkpoint")
    snapshot["model_step_10.pt"] = b"not a checkpoint"
    assert main([*argv, "--preset", "tiny", "--resume"]) == 2
    assert "cannot load model" in _err(capsys)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == snapshot  # config.yaml, reaction_nmt.json, vocab: untouched


def test_prepare_into_an_existing_corpus_refused(synthetic_data, tmp_path, capsys):
    out = tmp_path / "corpus"
    shutil.copytree(synthetic_data, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    csv = tmp_path / "r.csv"
    csv.write_text("rxn_smiles\nCC(=O)Cl.NCC>>CCNC(C)=O\n")
    assert main(["prepare", "--format", "csv", "--train", str(csv), "--out", str(out)]) == 2
    assert "already holds a corpus" in _err(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_prepare_failure_leaves_no_half_corpus(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("rxn_smiles\nCC(=O)Cl.NCC>>CCNC(C)=O\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"rxn_smiles\n\xff\xfeCC>>CC\n")
    out = tmp_path / "corpus"
    argv = ["prepare", "--format", "csv", "--train", str(good), "--test", str(bad)]
    assert main([*argv, "--out", str(out)]) == 2
    assert f"{bad}: not UTF-8 text (byte 0xff" in _err(capsys)
    assert not any(out.glob("*.txt")) and not (out / "manifest.json").exists()


@pytest.mark.parametrize("kind", ["not-utf8", "bad-gz", "directory"])
def test_unreadable_inputs_are_one_line(tiny_run, synthetic_data, tmp_path, capsys, kind):
    targets = tmp_path / "t.txt"
    if kind == "not-utf8":
        targets.write_bytes(b"C C O\n\xff\xfe\n")
    elif kind == "bad-gz":
        targets = tmp_path / "t.txt.gz"
        targets.write_bytes(gzip.compress(b"C C O\n" * 50)[:-12])
    else:
        targets = tmp_path / "a_dir.txt"
        targets.mkdir()
    preds = tmp_path / "p.txt"
    preds.write_text("C C O\n" * 5)
    code = main(
        ["evaluate", "--predictions", str(preds), "--targets", str(targets), "--n-best", "5"]
    )
    err = _err(capsys)
    assert code == 2 and str(targets) in err and err.count("\n") == 1


def test_predict_refuses_whitespace_and_lookalikes(tiny_run, capsys):
    model = str(tiny_run / "model_step_10.pt")
    assert main(["predict", "--model", model, "CC(=O)Cl NCC", "CC(=O)Cl.NC\u0421"]) == 1
    err = _err(capsys)
    assert "contains whitespace (at position 9)" in err
    assert "character 'С' (U+0421) at position 12 is not a SMILES character" in err


def test_internal_errors_are_one_line_unless_debug(monkeypatch, capsys):
    from reaction_nmt.cli import model

    # main sets CHEMPRUNE_DEBUG for --debug (the backend's log lines): undone after this test,
    # or every later test in the process would get tracebacks instead of one-line errors
    monkeypatch.setenv("CHEMPRUNE_DEBUG", "")

    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr(model, "run_average", boom)
    assert main(["average", "--models", "x.pt", "--out", "y.pt"]) == 70
    assert "internal error: RuntimeError: kaput" in _err(capsys)
    with pytest.raises(RuntimeError):
        main(["--debug", "average", "--models", "x.pt", "--out", "y.pt"])


def test_run_info_name_agrees():
    from reaction_nmt.cli.model import RUN_INFO
    from reaction_nmt.runfolder import RUN_INFO as RUN_INFO_2

    assert RUN_INFO == RUN_INFO_2


def _flip_weight_byte(path, tmp_path):
    """``path`` with one byte inside a weight tensor changed (the zip stays readable)."""
    import torch

    from reaction_nmt.backend import _onmt_loads

    with _onmt_loads():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    key = next(k for k, t in ckpt["model"].items() if t.numel() > 100 and t.is_floating_point())
    probe = ckpt["model"][key].reshape(-1)[:4].clone()
    raw = bytearray(path.read_bytes())
    needle = probe.numpy().tobytes()
    at = raw.find(needle)
    assert at > 0
    raw[at + 1] ^= 0x10
    out = tmp_path / "flipped.pt"
    out.write_bytes(bytes(raw))
    return out


def test_written_models_carry_a_checksum_and_damage_is_refused(tiny_run, tmp_path, capsys):
    import torch

    from reaction_nmt.backend import _onmt_loads, load_checkpoint
    from reaction_nmt.integrity import digest

    avg = tmp_path / "avg.pt"
    assert main(["average", "--run", str(tiny_run), "--last", "2", "--out", str(avg)]) == 0
    capsys.readouterr()
    ckpt = load_checkpoint(avg)
    assert ckpt["integrity"]["digest"] == digest(ckpt)
    flipped = _flip_weight_byte(avg, tmp_path)
    assert main(["predict", "--model", str(flipped), "CCO"]) == 2
    err = _err(capsys)
    assert f"model {flipped} is corrupted" in err and len(err.strip().splitlines()) == 1
    # the trainer's own checkpoints carry no checksum, but NaN weights are still refused
    with _onmt_loads():
        raw = torch.load(tiny_run / "model_step_10.pt", map_location="cpu", weights_only=True)
    key = next(k for k, t in raw["model"].items() if t.is_floating_point())
    raw["model"][key] = torch.full_like(raw["model"][key], float("nan"))
    nan = tmp_path / "nan.pt"
    torch.save(raw, nan)
    assert main(["predict", "--model", str(nan), "CCO"]) == 2
    assert f"model {nan} holds non-finite weights (NaN or inf) in {key}" in _err(capsys)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"{broken", " is not valid JSON (line 1, column 2: Expecting property name enclosed in "
                     "double quotes)"),
        (b"[1, 2]", " holds a JSON list, not an object"),
        (b'{"mode": 3}', ": 'mode' is not a string"),
        (b'{"mode": "sideways"}', ": mode 'sideways' is not one of mixed, separated"),
        (b"\xff{}", " is not UTF-8 text (byte 0)"),
    ],
)  # fmt: skip
def test_malformed_run_description_is_one_line(tmp_path, capsys, monkeypatch, content, what):
    monkeypatch.setenv("CHEMPRUNE_DEBUG", "")  # (main sets it for --debug)
    info = tmp_path / "reaction_nmt.json"
    info.write_bytes(content)
    assert main(["predict", "--model", str(tmp_path / "model.pt"), "CCO"]) == 2
    assert _err(capsys) == f"reaction-nmt: error: run description {info}{what}\n"


def test_untrusted_model_refused_without_torchs_advice(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setenv("CHEMPRUNE_DEBUG", "")
    model = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), model)
    assert main(["predict", "--model", str(model), "CCO"]) == 2
    assert _err(capsys) == (
        f"reaction-nmt: error: cannot load model {model}: it holds objects other than tensors "
        "and plain data (it names the Python object torch.nn.modules.linear.Linear) and is not "
        "loaded: an OpenNMT-py 3 or reaction-nmt model holds tensors, its vocabulary and "
        "OpenNMT-py's options only\n"
    )


def test_library_warnings_silenced_unless_debug(monkeypatch, capsys):
    import warnings

    from reaction_nmt.cli import model

    monkeypatch.setenv("CHEMPRUNE_DEBUG", "")  # (main sets it for --debug: undone)

    def noisy(args):
        warnings.warn("a library's notice\nover lines", FutureWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(model, "run_average", noisy)
    assert main(["average", "--models", "x.pt", "--out", "y.pt"]) == 0
    assert _err(capsys) == ""
    with pytest.warns(FutureWarning, match="a library's notice"):
        assert main(["--debug", "average", "--models", "x.pt", "--out", "y.pt"]) == 0
