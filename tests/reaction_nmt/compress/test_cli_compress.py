"""``reaction-nmt compress`` smoke runs and bad inputs (exit code 2)."""

from __future__ import annotations

import argparse
import json

import pytest

from reaction_nmt.compress import CompressError


def run_cli(argv: list[str]) -> int:
    """``reaction-nmt compress`` as ``reaction_nmt.cli.main`` runs it (parser, error codes)."""
    from reaction_nmt.cli import _expected_errors
    from reaction_nmt.cli.compress import add_compress

    p = argparse.ArgumentParser(prog="reaction-nmt")
    add_compress(p.add_subparsers(dest="command", required=True))
    try:
        args = p.parse_args(argv)
    except SystemExit as exit_:  # refused by the option types (message on stderr)
        return exit_.code
    try:
        return args.func(args)
    except (*_expected_errors(), CompressError) as err:
        print(f"reaction-nmt: error: {err}")
        return 2


def test_compress_structured_then_olmp(tiny_model, synthetic_data, tmp_path, capsys):
    out, report = tmp_path / "small.pt", tmp_path / "report.json"
    argv = ["compress", "--model", str(tiny_model), "--data", str(synthetic_data),
            "--out", str(out), "--strategy", "layer_type", "--metric", "ppl",
            "--max-ppl-rise", "0.5", "--structured", "heads,ff", "--keep-heads", "2",
            "--keep-ff", "0.5", "--budget", "4", "--retrain-steps", "1", "--rounds", "1",
            "--valid-limit", "8", "--threads", "1", "--storage", "sparse-int8",
            "--json", str(report)]  # fmt: skip
    assert run_cli(argv) == 0
    text = capsys.readouterr().out
    assert "enc0/attn_q" in text and "validation ppl (8 reactions)" in text
    r = json.loads(report.read_text())
    assert r["structured"]["heads_after"] == r["structured"]["heads_before"] // 2
    assert r["metric"]["after"] >= r["metric"]["before"] - 0.5 - 1e-6
    assert r["size_bytes"] == out.stat().st_size < r["dense_bytes"]
    assert any("retrain" in x for x in r["olmp"]["rounds"])

    from reaction_nmt.backend import Translator

    t = Translator(out, beam_size=1, n_best=1, max_length=20)
    assert len(t.translate(["C C O", "C C ( = O ) Cl"])) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--structured", "layers"], "--structured takes heads and/or ff"),
        (["--keep-heads", "9", "--structured", "heads"], "between 1 and 4"),
        (["--spec", "missing.yaml"], "does not exist"),
        (["--max-top1-drop", "-1"], "argument --max-top1-drop: must be a finite number >= 0"),
        (["--strategy", "none"], "nothing to do"),
        (["--teacher", "m.pt"], "--teacher acts in retraining: give --retrain-steps"),
        (["--teacher", "m.pt", "--retrain-steps", "2"], "--teacher m.pt: no such file"),
        (["--kd-alpha", "0.9"], "--kd-alpha/--kd-temperature need --teacher"),
        (["--gradual", "0.8"], "--gradual prunes in OLMP's retraining rounds"),
        (["--gradual", "1.2", "--retrain-steps", "2"], "argument --gradual: must be a finite"),
        (["--gradual-every", "5"], "--gradual-ramp/--gradual-every need --gradual"),
    ],
)
def test_bad_arguments(tiny_model, synthetic_data, tmp_path, capsys, extra, message):
    argv = ["compress", "--model", str(tiny_model), "--data", str(synthetic_data),
            "--out", str(tmp_path / "x.pt"), "--valid-limit", "4", "--budget", "1",
            "--metric", "seq", *extra]  # fmt: skip
    assert run_cli(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert not (tmp_path / "x.pt").exists()


def test_bad_files(tiny_model, synthetic_data, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for model, data, message in [
        (bad, synthetic_data, "cannot load model"),
        (tmp_path / "none.pt", synthetic_data, "does not exist"),
        (tiny_model, tmp_path, "does not exist"),
    ]:
        argv = ["compress", "--model", str(model), "--data", str(data),
                "--out", str(tmp_path / "x.pt")]  # fmt: skip
        assert run_cli(argv) == 2
        assert message in capsys.readouterr().out
