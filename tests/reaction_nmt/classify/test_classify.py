"""The reaction-class classifier: data, model, training, files, baseline."""

from __future__ import annotations

import math

import pytest
import torch

from chemprune.common.atomic import CheckpointError, atomic_save
from reaction_nmt.classify.data import (
    Vocabulary,
    read_csv_classes,
    read_liu_classes,
    read_split,
)
from reaction_nmt.classify.fingerprint import difference_fingerprints, fingerprint_baseline
from reaction_nmt.classify.model import ReactionCNN
from reaction_nmt.classify.train import (
    classifier_file,
    encode_reactions,
    evaluate_classifier,
    load_classifier,
    train_classifier,
)
from reaction_nmt.formats import DataFormatError
from tests.reaction_nmt.classify.conftest import rows, write_liu


def test_liu_files_give_classes(liu_dir):
    train = read_split(liu_dir, "train")
    assert len(train) == 48 and {r.label for r in train} == {1, 5}  # 0-based classes 2 and 6
    assert train[0].smiles == "CC(=O)Cl.NCC>>CCNC(C)=O"
    assert len(read_split(liu_dir, "valid")) == 8  # plain text works too


@pytest.mark.parametrize(
    ("src", "match"),
    [
        ("C C O\n", "no <RX_k>"),
        ("<RX_11> C C O\n", "unknown reaction class 11"),
        ("", "is empty"),
        ("<RX_2>\n", "no reactants or no product"),
    ],
)
def test_bad_liu_lines(tmp_path, src, match):
    (tmp_path / "src-x.txt").write_text(src)
    (tmp_path / "tgt-x.txt").write_text("C C . O\n" if src else "")
    with pytest.raises(DataFormatError, match=match):
        read_liu_classes(tmp_path / "src-x.txt")


def test_csv_with_a_class_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("class,reactants_can,prod_smiles,split\n2,CC(=O)Cl.NCC,CCNC(C)=O,train\n"
                    "6,CC(C)(C)OC(=O)NCC,NCC,test\n")  # fmt: skip
    assert [r.label for r in read_csv_classes(path, split="train")] == [1]
    path.write_text("class,reactants_can,prod_smiles\n,CCO,CC\n")
    with pytest.raises(DataFormatError, match="r.csv:2: the reaction has no class"):
        read_csv_classes(path)
    path.write_text("reactants_can,prod_smiles\nCCO,CC\n")
    with pytest.raises(DataFormatError, match="no column 'class'"):
        read_csv_classes(path)


def test_model_ignores_padding_and_shows_widths(liu_dir):
    reactions = read_split(liu_dir, "train")
    vocab = Vocabulary.build(reactions)
    x, _ = encode_reactions(reactions[:4], vocab, 64)
    model = ReactionCNN(vocab_size=len(vocab), channels=(8, 12), embed_dim=8).eval()
    assert "channels=[8, 12]" in repr(model)
    short = x[:, : int((x != 0).sum(1).max())]
    torch.testing.assert_close(model(x), model(short))
    assert [f.shape[1] for f in model.features(x)] == [8, 12]


def _tiny_run(liu_dir, out, epochs, resume=False, **options):
    train, valid = read_split(liu_dir, "train"), read_split(liu_dir, "valid")
    vocab = Vocabulary.build(train)
    torch.manual_seed(0)
    model = ReactionCNN(vocab_size=len(vocab), channels=(16, 16), embed_dim=16)
    summary = train_classifier(
        encode_reactions(train, vocab, 64), encode_reactions(valid, vocab, 64), vocab, out,
        model=model, max_len=64, epochs=epochs, batch_size=8, lr=3e-3, resume=resume, **options,
    )  # fmt: skip
    return model, summary


def test_cosine_schedule_ends_at_min_lr_and_resumes_exactly(liu_dir, tmp_path):
    cos = {"lr_schedule": "cosine", "min_lr": 1e-4}
    whole, summary = _tiny_run(liu_dir, tmp_path / "a", 4, **cos)
    lrs = [g["lr"] for g in torch.load(summary["last"], weights_only=True)["training"]
           ["optimizer"]["param_groups"]]  # fmt: skip
    steps = 4 * (len(read_split(liu_dir, "train")) // 8)  # the last step is one before the end
    expected = 1e-4 + (3e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (steps - 1) / steps))
    assert lrs == pytest.approx([expected] * len(lrs)) and expected < 3e-3 / 5
    calls = []

    def interrupted(m, x, y):  # an interrupt in the middle of the second epoch
        calls.append(1)
        if len(calls) == steps // 4 + 2:
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(m(x), y)

    with pytest.raises(KeyboardInterrupt):
        _tiny_run(liu_dir, tmp_path / "b", 4, loss_fn=interrupted, **cos)
    resumed, _ = _tiny_run(liu_dir, tmp_path / "b", 4, resume=True, **cos)
    constant, _ = _tiny_run(liu_dir, tmp_path / "c", 4)
    weights = [list(m.state_dict().values()) for m in (whole, resumed, constant)]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    assert not all(torch.equal(a, c) for a, c in zip(weights[0], weights[2], strict=True))
    with pytest.raises(ValueError, match="lr_schedule"):
        _tiny_run(liu_dir, tmp_path / "d", 1, lr_schedule="step")
    with pytest.raises(ValueError, match="min_lr"):
        _tiny_run(liu_dir, tmp_path / "e", 1, lr_schedule="cosine", min_lr=1.0)


def test_training_learns_and_resumes_exactly(liu_dir, tmp_path):
    model, summary = _tiny_run(liu_dir, tmp_path / "a", 6)
    assert summary["best_valid_accuracy"] == 1.0
    _tiny_run(liu_dir, tmp_path / "b", 3)
    with pytest.raises(FileExistsError, match="--resume"):
        _tiny_run(liu_dir, tmp_path / "b", 6)
    resumed, _ = _tiny_run(liu_dir, tmp_path / "b", 6, resume=True)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    m, vocab, ck = load_classifier(summary["best"])
    test = read_split(liu_dir, "test")
    res = evaluate_classifier(m, *encode_reactions(test, vocab, ck["max_len"]), 10)
    assert res["accuracy"] == 1.0 and res["per_class"]["2"] == 1.0 and res["per_class"]["1"] is None
    assert sum(map(sum, res["confusion"])) == len(test)


def test_foreign_and_damaged_files(tmp_path, liu_dir):
    atomic_save({"format": "chemprune.schnet"}, tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match="not a reaction-class classifier"):
        load_classifier(tmp_path / "s.pt")
    reactions = read_split(liu_dir, "train")
    vocab = Vocabulary.build(reactions)
    model = ReactionCNN(vocab_size=len(vocab), channels=(4,), embed_dim=4)
    ck = classifier_file(model, vocab, 32)
    ck["state_dict"]["head.bias"] += 1
    atomic_save(ck, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_classifier(tmp_path / "bad.pt")
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    atomic_save(classifier_file(model, vocab, 32), tmp_path / "nan.pt")  # a valid digest
    with pytest.raises(CheckpointError, match="non-finite weight"):
        load_classifier(tmp_path / "nan.pt")


def test_difference_fingerprint_baseline(tmp_path):
    write_liu(tmp_path, "train", rows(16))
    reactions = read_split(tmp_path, "train")
    fps = difference_fingerprints(reactions[:2], size=256)
    assert fps.shape == (2, 256) and (fps != 0).any(1).all()
    assert fingerprint_baseline(reactions, reactions, size=256)["accuracy"] == 1.0
