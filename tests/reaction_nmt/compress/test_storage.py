"""Sparse storage: exact round trip (fp32), int8 within its quantisation error, smaller files,
and OpenNMT-py translates a sparse file directly through the hooks."""

from __future__ import annotations

import pytest
import torch

from reaction_nmt.compress import CompressError
from reaction_nmt.compress.storage import densify, load_model, save_model, sparsify

from .conftest import valid_slice


@pytest.fixture(scope="module")
def pruned(tiny_model):
    """The tiny checkpoint with 90% of each weight matrix's smallest weights zeroed."""
    from reaction_nmt.backend import load_checkpoint

    ckpt = load_checkpoint(tiny_model)
    ckpt["optim"] = None
    for part in ("model", "generator"):
        for _key, t in ckpt[part].items():
            if t.dim() == 2:
                k = int(0.9 * t.numel())
                cut = t.abs().flatten().kthvalue(k).values
                t.mul_(t.abs() > cut)  # in place: tied tensors stay tied
    return ckpt


def test_fp32_round_trip_is_exact(pruned, tmp_path):
    dense_size = save_model(pruned, tmp_path / "dense.pt", "dense")
    sparse_size = save_model(pruned, tmp_path / "sparse.pt", "sparse")
    int8_size = save_model(pruned, tmp_path / "int8.pt", "sparse-int8")
    assert int8_size < sparse_size < dense_size / 3
    back = load_model(tmp_path / "sparse.pt")
    for part in ("model", "generator"):
        assert list(back[part]) == list(pruned[part])
        for key, t in pruned[part].items():
            assert back[part][key].dtype == t.dtype
            assert torch.equal(back[part][key], t), key
    emb = "make_embedding.emb_luts.0.weight"
    enc, dec = (back["model"][f"{s}.embeddings.{emb}"] for s in ("encoder", "decoder"))
    assert enc.data_ptr() == dec.data_ptr()  # tied weights stay tied
    assert vars(back["opt"]) == vars(pruned["opt"]) and back["vocab"] == pruned["vocab"]


def test_int8_error_bound_and_zeros(pruned):
    obj = sparsify(pruned, int8=True)
    back = densify(obj)
    for key, t in pruned["model"].items():
        entry = obj["sparse"]["model"].get(key, {})
        if "scale" not in entry:
            continue
        err = (back["model"][key] - t).abs().max()
        assert err <= entry["scale"] / 2 + 1e-7, key
        assert torch.equal(back["model"][key] == 0, (t == 0) | (t.abs() < entry["scale"] / 2))


def test_index_encoding_beyond_97_percent():
    t = torch.zeros(64, 64)
    t[3, 5], t[60, 1] = 1.5, -2.0
    obj = sparsify({"model": {"w": t}, "generator": {}, "opt": None, "vocab": {}})
    assert "index" in obj["sparse"]["model"]["w"]
    assert torch.equal(densify(obj)["model"]["w"], t)
    with pytest.raises(CompressError, match="not a sparse"):
        densify({"model": {}})


def test_sparse_file_translates_like_dense(pruned, synthetic_data, tmp_path):
    from reaction_nmt.backend import Translator

    save_model(pruned, tmp_path / "dense.pt", "dense")
    save_model(pruned, tmp_path / "sparse.pt", "sparse")
    src, _ = valid_slice(synthetic_data, 6)
    want = Translator(tmp_path / "dense.pt", beam_size=2, n_best=2, max_length=30).translate(src)
    got = Translator(tmp_path / "sparse.pt", beam_size=2, n_best=2, max_length=30)
    assert got.translate(src) == want


def test_sparse_file_counts_the_parameters_of_its_architecture(pruned, tiny_model, tmp_path):
    from reaction_nmt.backend import count_parameters

    save_model(pruned, tmp_path / "sparse.pt", "sparse")
    assert count_parameters(tmp_path / "sparse.pt") == count_parameters(tiny_model)
