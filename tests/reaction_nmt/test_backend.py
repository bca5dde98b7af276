"""The OpenNMT-py adapter under torch 2.13: train, budget, resume, load, average, translate."""

import argparse

import pytest
import torch

from reaction_nmt import backend
from reaction_nmt.presets import build_config, write_vocab


def test_opennmt_imports_under_this_torch():
    assert backend.onmt_version() == "3.5.1"
    assert torch.__version__.startswith("2.13")


def test_checkpoints_load_weights_only(tiny_run):
    found = backend.checkpoints(tiny_run)
    assert [p.name for p in found] == ["model_step_5.pt", "model_step_10.pt"]
    ckpt = backend.load_checkpoint(found[-1])
    assert isinstance(ckpt["opt"], argparse.Namespace)
    assert ckpt["opt"].num_workers == 0
    assert 100_000 < backend.count_parameters(found[-1]) < 1_000_000


def test_foreign_or_broken_checkpoints_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(backend.BackendError, match="not an OpenNMT-py checkpoint"):
        backend.load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(backend.BackendError, match="cannot load model"):
        backend.load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(backend.BackendError, match="does not exist"):
        backend.Translator(tmp_path / "missing.pt")


def test_average_is_the_mean_of_the_weights(tiny_run, tmp_path):
    paths = backend.checkpoints(tiny_run)
    out = backend.average_checkpoints(paths, tmp_path / "avg.pt")
    a, b, avg = (backend.load_checkpoint(p) for p in (*paths, out))
    key = next(k for k in a["model"] if k.endswith("weight"))
    assert not torch.equal(a["model"][key], b["model"][key])
    torch.testing.assert_close(avg["model"][key], (a["model"][key] + b["model"][key]) / 2)


def test_translate_gives_n_best_with_scores(tiny_run, synthetic_data):
    translator = backend.Translator(backend.checkpoints(tiny_run)[-1], beam_size=3, n_best=3)
    sources = (synthetic_data / "src-test.txt").read_text().splitlines()[:4]
    out = translator.translate(sources)
    assert len(out) == 4 and all(len(nbest) == 3 for nbest in out)
    scores = [s for _, s in out[0]]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(backend.BackendError, match="n_best"):
        backend.Translator(backend.checkpoints(tiny_run)[-1], beam_size=2, n_best=3)


def test_time_budget_stops_and_resume_continues(synthetic_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_vocab(
        [synthetic_data / "src-train.txt", synthetic_data / "tgt-train.txt"], run / "vocab.txt"
    )
    small = {"batch_size": 256, "valid_steps": 1000, "save_checkpoint_steps": 1000}
    config = build_config(preset="tiny", data_dir=synthetic_data, run_dir=run, overrides=small)
    config["train_steps"] = 100_000
    result = backend.train(config, max_seconds=2.0)
    assert result.stopped_by_budget and 0 < result.step < 100_000
    assert result.seconds < 60
    resumed = build_config(
        preset="tiny",
        data_dir=synthetic_data,
        run_dir=run,
        overrides={**small, "train_steps": result.step + 3},
        train_from=result.checkpoint,
    )
    again = backend.train(resumed)
    assert not again.stopped_by_budget and again.step == result.step + 3
    ckpt = backend.load_checkpoint(again.checkpoint)
    assert ckpt["optim"]["training_step"] == result.step + 4  # optimizer state carried over


def test_unknown_option_is_refused(synthetic_data, tmp_path):
    config = build_config(
        preset="tiny", data_dir=synthetic_data, run_dir=tmp_path, overrides={"not_an_option": 1}
    )
    with pytest.raises(backend.BackendError, match="not_an_option"):
        backend.train(config)


def test_namespace_is_allowed_for_opennmt_loads_only(tmp_path):
    """OpenNMT-py checkpoints hold an argparse.Namespace; allowing it must not leak into the
    weights-only loads of the rest of the process (chemprune's checkpoints refuse it)."""
    import argparse
    import pickle

    import torch

    from reaction_nmt import backend

    path = tmp_path / "onmt_like.pt"
    ckpt = {"model": {}, "generator": {}, "vocab": {}, "opt": argparse.Namespace(layers=2)}
    torch.save(ckpt, path)
    assert backend.load_checkpoint(path)["opt"].layers == 2
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
