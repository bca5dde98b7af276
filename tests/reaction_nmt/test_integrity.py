"""Checksums of reaction-model files: the sparse layout is covered, damaged entries are refused."""

from __future__ import annotations

import pytest
import torch

from reaction_nmt.compress.errors import CompressError
from reaction_nmt.integrity import ALGORITHM, IntegrityError, digest, stamp, verify
from reaction_nmt.modelfile import FORMAT, densify


def sparse_ckpt() -> dict:
    values = torch.tensor([3, -7, 1], dtype=torch.int8)
    return {
        "format": FORMAT, "vocab": {"src": ["a", "b"]}, "opt": None,
        "model": {"bias": torch.zeros(2)}, "generator": {},
        "sparse": {"model": {"w": {"dtype": "float32", "shape": [2, 3], "index": torch.tensor([0, 2, 5]),
                                   "values": values, "scale": 0.5}}},
        "order": {"model": ["w", "bias"]},
    }  # fmt: skip


def test_dense_decoding_of_a_sparse_entry():
    out = densify(sparse_ckpt())
    torch.testing.assert_close(out["model"]["w"], torch.tensor([[1.5, 0, -3.5], [0, 0, 0.5]]))
    assert list(out["model"]) == ["w", "bias"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: e.update(dtype="float\x002"),  # a flipped byte in the dtype's name
        lambda e: e.update(shape=[1, 2]),  # fewer positions than indices
        lambda e: e.update(values=None),
        lambda e: e.update(scale="x"),
    ],
)
def test_damaged_layout_fails_the_checksum_and_does_not_decode(damage):
    ckpt = stamp(sparse_ckpt())
    assert ckpt["integrity"]["algorithm"] == ALGORITHM
    verify(ckpt, "m.pt")
    damage(ckpt["sparse"]["model"]["w"])
    with pytest.raises(IntegrityError, match="m.pt is corrupted"):
        verify(ckpt, "m.pt")
    with pytest.raises(CompressError, match="corrupted"):  # and without a checksum
        densify({k: v for k, v in ckpt.items() if k != "integrity"})


def test_files_stamped_before_the_layout_was_covered_still_verify():
    ckpt = sparse_ckpt()
    ckpt["integrity"] = {"algorithm": "sha256", "digest": digest(ckpt, "sha256")}
    verify(ckpt, "old.pt")
    ckpt["integrity"]["algorithm"] = "md5"
    with pytest.raises(IntegrityError, match="unreadable integrity entry"):
        verify(ckpt, "old.pt")
