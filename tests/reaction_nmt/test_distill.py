"""Distillation of OpenNMT-py models: the loss hook in its trainer, sequence-level data, CLI.

The teacher is the tiny model of the ``tiny_run`` fixture (10 steps on the synthetic data).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from chemprune.engines.distill import TeacherCache
from reaction_nmt import backend
from reaction_nmt.distill import (
    DistillError,
    WordLevelHook,
    distill,
    load_teacher,
    sequence_level_data,
    write_teacher_vocab,
)
from reaction_nmt.presets import build_config

FEW = {"batch_size": 256, "valid_steps": 1000, "save_checkpoint_steps": 1000, "report_every": 1}


@pytest.fixture(scope="module")
def teacher(tiny_run: Path) -> Path:
    return backend.checkpoints(tiny_run)[-1]


def student_config(data: Path, run: Path, teacher: Path, steps: int) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    write_teacher_vocab(backend.load_checkpoint(teacher)["vocab"], run / "vocab.txt")
    return build_config(
        preset="tiny", data_dir=data, run_dir=run, overrides={**FEW, "train_steps": steps}
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = backend.load_checkpoint(path)
    return {**ckpt["model"], **{f"generator.{k}": v for k, v in ckpt["generator"].items()}}


def test_kd_loss_runs_inside_opennmt_training_and_equals_the_formula(
    teacher, synthetic_data, tmp_path
):
    T, alpha = 2.0, 0.4
    hook = WordLevelHook(teacher, temperature=T, alpha=alpha, record=True)
    before = {k: v.clone() for k, v in hook.teacher.state_dict().items()}
    config = student_config(synthetic_data, tmp_path / "run", teacher, steps=2)
    result = backend.train(config, loss_hook=hook)
    assert result.step == 2
    loss = hook.loss
    assert loss is not None and loss.calls == 2  # once per training batch, none for validation
    rec = loss.last
    pad = loss.padding_idx
    keep = rec["target"] != pad
    # the teacher's scores are really the teacher's, on the same batch
    model, _ = load_teacher(teacher)
    with torch.no_grad():
        out, _ = model(rec["src"], rec["tgt"], rec["srclen"])
        expected = model.generator(out.reshape(-1, out.shape[-1]))
    torch.testing.assert_close(rec["teacher_scores"], expected, atol=1e-5, rtol=1e-5)
    # the loss is (1 - alpha) * CE + alpha * T^2 * KL over non-padding tokens
    s, t, y = rec["scores"].double(), rec["teacher_scores"].double(), rec["target"]
    p_t = torch.softmax(t / T, -1)
    kl = (p_t * (torch.log_softmax(t / T, -1) - torch.log_softmax(s / T, -1))).sum(-1)
    kd = float((kl * T * T)[keep].sum())
    ce = float(F.cross_entropy(s, y, ignore_index=pad, reduction="sum"))
    assert rec["kd"] == pytest.approx(kd, rel=1e-5)
    assert rec["ce"] == pytest.approx(ce, rel=1e-5)
    assert rec["loss"] == pytest.approx((1 - alpha) * ce + alpha * kd, rel=1e-5)
    assert kd > 0
    # the teacher stays frozen
    for k, v in hook.teacher.state_dict().items():
        assert torch.equal(v, before[k])
    summary = loss.summary()
    assert summary["batches"] == 2 and summary["tokens"] > int(keep.sum())


def test_alpha_zero_is_plain_training_and_alpha_changes_it(teacher, synthetic_data, tmp_path):
    runs = {}
    for name, hook in (
        ("plain", None),
        ("alpha0", WordLevelHook(teacher, temperature=2.0, alpha=0.0)),
        ("alpha09", WordLevelHook(teacher, temperature=2.0, alpha=0.9)),
    ):
        config = student_config(synthetic_data, tmp_path / name, teacher, steps=3)
        runs[name] = weights(backend.train(config, loss_hook=hook).checkpoint)
    plain, zero, kd = runs["plain"], runs["alpha0"], runs["alpha09"]
    assert plain.keys() == zero.keys() == kd.keys()
    for k in plain:
        assert torch.equal(plain[k], zero[k]), k
    changed = [k for k in plain if not torch.equal(plain[k], kd[k])]
    assert len(changed) > len(plain) // 2


def test_teacher_cache_skips_the_teacher_on_seen_examples(teacher, small_data, tmp_path):
    runs = {}
    for name, cache in (("live", None), ("cached", TeacherCache())):
        hook = WordLevelHook(teacher, temperature=2.0, alpha=0.5, cache=cache, record=True)
        backend.train(student_config(small_data, tmp_path / name, teacher, 6), loss_hook=hook)
        runs[name] = hook.loss
    live, cached = runs["live"], runs["cached"]
    assert live.calls == cached.calls == 6 and live.teacher_calls == 6
    # 16 reactions, several batches of them: after the first batches all are cached
    assert cached.teacher_calls < 6 and cached.cache.hits > 0 and len(cached.cache) <= 16
    assert cached.summary()["cache"]["entries"] == len(cached.cache)
    for a, b in zip(live.history, cached.history, strict=True):  # float16 logits: ~same loss
        assert b["kd"] == pytest.approx(a["kd"], rel=2e-3)
        assert b["ce"] == pytest.approx(a["ce"], rel=2e-3)


def test_vocabulary_mismatch_is_refused(teacher, synthetic_data, tmp_path):
    config = student_config(synthetic_data, tmp_path / "run", teacher, steps=1)
    vocab = Path(config["src_vocab"])
    lines = vocab.read_text().splitlines()
    lines[4], lines[5] = lines[5], lines[4]  # same tokens, another order
    vocab.write_text("\n".join(lines) + "\n")
    hook = WordLevelHook(teacher, alpha=0.5)
    with pytest.raises(DistillError, match="not the teacher's"):
        backend.train(config, loss_hook=hook)
    with pytest.raises(DistillError, match="do not override src_vocab"):
        distill(
            teacher=teacher, data=synthetic_data, out=tmp_path / "x", preset="tiny",
            overrides={"src_vocab": str(vocab)},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temperature": 0.0}, "temperature must be"),
        ({"alpha": 2.0}, "alpha must be in"),
        ({"mode": "token"}, "mode must be one of"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(kw, synthetic_data, tmp_path, match):
    with pytest.raises(DistillError, match=match):
        distill(teacher=tmp_path / "none.pt", data=synthetic_data, out=tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def small_data(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic data with 16 training reactions (the teacher translates them all)."""
    folder = tmp_path_factory.mktemp("small") / "data"
    folder.mkdir()
    for f in synthetic_data.iterdir():
        if f.name.endswith("-train.txt"):
            (folder / f.name).write_text("".join(f.read_text().splitlines(True)[:16]))
        else:
            shutil.copy(f, folder / f.name)
    return folder


def test_sequence_level_data_has_the_teacher_predictions_as_targets(teacher, small_data, tmp_path):
    out = sequence_level_data(teacher, small_data, tmp_path / "seq", beam_size=2, max_length=40)
    sources = (small_data / "src-train.txt").read_text().splitlines()
    gold = (small_data / "tgt-train.txt").read_text().splitlines()
    best = [
        nbest[0][0].strip()
        for nbest in backend.Translator(teacher, beam_size=2, n_best=1, max_length=40).translate(
            sources
        )
    ]
    assert (out / "src-train.txt").read_text().splitlines() == sources
    assert (out / "tgt-train.txt").read_text().splitlines() == [
        p or g for p, g in zip(best, gold, strict=True)
    ]
    assert any(
        p != g for p, g in zip(best, gold, strict=True)
    )  # a 10-step teacher is not the gold data
    for name in ("src-valid.txt", "tgt-valid.txt", "src-test.txt", "tgt-test.txt"):
        assert (out / name).read_bytes() == (small_data / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["sequence_distillation"]
    assert info["teacher"] == str(teacher.resolve()) and info["targets"] == "teacher"
    assert info["train_pairs"] == 16 and info["beam_size"] == 2
    assert manifest["files"]["tgt-train.txt"]["lines"] == 16
    mixed = sequence_level_data(
        teacher, small_data, tmp_path / "mixed", beam_size=2, max_length=40, targets="mixed"
    )
    tgt = (mixed / "tgt-train.txt").read_text().splitlines()
    assert tgt == [
        x for p, g in zip(best, gold, strict=True) for x in ([g, p] if p and p != g else [g])
    ]
    assert (mixed / "src-train.txt").read_text().count("\n") == len(tgt) > len(gold)


def cli(*argv: str) -> int:
    from reaction_nmt.cli import main

    try:
        return main(list(argv))
    except SystemExit as exit_:  # refused by an option type (message on stderr)
        return exit_.code


def test_cli_distill_word_and_sequence(teacher, synthetic_data, small_data, tmp_path, capsys):
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(teacher.parent), "--data", str(synthetic_data)]
    args += ["--out", str(out), "--preset", "tiny", "--threads", "1", "--temperature", "3"]
    assert cli(*args, "-train_steps", "4", "-batch_size", "256", "-valid_steps", "1000") == 0
    assert "distilled (word-level) 4 steps" in capsys.readouterr().out
    assert [p.name for p in backend.checkpoints(out)] == ["model_step_4.pt"]
    info = json.loads((out / "reaction_nmt.json").read_text())
    assert info["distillation"]["mode"] == "word" and info["distillation"]["temperature"] == 3.0
    assert info["distillation"]["training"]["batches"] == 4
    assert info["mode"] == "mixed"  # the data's mode, for 'predict'
    seq = tmp_path / "seq"
    args = ["distill", "--teacher", str(teacher), "--data", str(small_data), "--out", str(seq)]
    args += ["--preset", "tiny", "--mode", "sequence", "--beam-size", "2", "--max-length", "40"]
    assert cli(*args, "-train_steps", "2", "-batch_size", "256", "-valid_steps", "1000") == 0
    assert (seq / "data_teacher" / "manifest.json").is_file()
    cfg = (seq / "config.yaml").read_text()
    assert str(seq / "data_teacher" / "src-train.txt") in cfg


def test_cli_errors_exit_2(teacher, synthetic_data, tmp_path, capsys):
    base = ["distill", "--data", str(synthetic_data), "--out", str(tmp_path / "o")]
    base += ["--preset", "tiny"]
    assert cli(*base, "--teacher", str(tmp_path / "missing.pt")) == 2
    assert "does not exist" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    assert cli(*base, "--teacher", str(tmp_path / "foreign.pt")) == 2
    assert "not an OpenNMT-py checkpoint" in capsys.readouterr().err
    assert cli(*base, "--teacher", str(teacher), "--temperature", "-1") == 2
    assert "argument --temperature: must be a finite number > 0" in capsys.readouterr().err
    assert cli(*base, "--teacher", str(teacher), "--alpha", "1.5") == 2
    assert "argument --alpha: must be a finite number >= 0 and <= 1" in capsys.readouterr().err
    assert cli(*base, "--teacher", str(teacher), "-src_vocab", "v.txt") == 2
    assert "teacher's vocabulary" in capsys.readouterr().err
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert cli(*base, "--teacher", str(empty)) == 2
    assert "no model_step_N.pt" in capsys.readouterr().err
