"""MNIST IDX reading: tiny IDX files in tmp_path for the format, the real folder if present."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.mnist_data import (
    CAFFE_SCALE,
    MD5,
    SHA256,
    MNISTChecksumError,
    MNISTDownloadError,
    MNISTFormatError,
    download_mnist,
    load_mnist,
    mnist_tensors,
    read_idx,
    write_idx,
)

# CI runs a clone with shared/ beside it: ../shared/datasets/mnist relative to the repository
REAL_MNIST = Path(
    os.environ.get(
        "CHEMPRUNE_MNIST", Path(__file__).resolve().parents[2].parent / "shared/datasets/mnist"
    )
)
GZ_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_tiny(folder: Path, *, gz: bool = True, n_train: int = 5, n_test: int = 3) -> dict:
    """Tiny MNIST-format files; returns arrays and a {file name: sha256} map."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    out: dict = {"checksums": {}}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0] = 255
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            path = write_idx(folder / f"{prefix}-{kind}-ubyte{suffix}", arr)
            out["checksums"][path.name] = _sha256(path)
        out[split] = (images, labels)
    return out


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "mnist"
    return folder, _write_tiny(folder)


# -- IDX format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    arr = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write_idx(tmp_path / name, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    assert read_idx(path, checksum=_sha256(path)).shape == (2, 3, 4)
    with pytest.raises(MNISTChecksumError, match=name):
        read_idx(path, checksum="0" * 64)


def test_idx_header_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "l.idx", np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 4])
    path = write_idx(tmp_path / "i.idx", np.array([[258]], dtype=np.int32))
    assert path.read_bytes()[:4] == bytes([0, 0, 0x0C, 2])
    assert path.read_bytes()[-4:] == bytes([0, 0, 1, 2])
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "x.idx", np.zeros(2, dtype=np.uint16))


# -- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_tiny(tmp_path, gz):
    folder = tmp_path / "m"
    written = _write_tiny(folder, gz=gz)
    for split, n in (("train", 5), ("test", 3)):
        images, labels = load_mnist(folder, split, checksums=written["checksums"])
        assert images.dtype == torch.uint8 and images.shape == (n, 28, 28)
        assert labels.dtype == torch.int64 and labels.shape == (n,)
        np.testing.assert_array_equal(images.numpy(), written[split][0])
        np.testing.assert_array_equal(labels.numpy(), written[split][1])
        images2, _ = load_mnist(str(folder), split, verify=False)
        assert torch.equal(images, images2)


def test_load_uses_default_dir_from_env(tiny, monkeypatch):
    folder, written = tiny
    monkeypatch.setenv("CHEMPRUNE_MNIST", str(folder))
    _, labels = load_mnist(split="test", verify=False)
    np.testing.assert_array_equal(labels.numpy(), written["test"][1])


def test_mnist_tensors_caffe_scale(tiny):
    folder, written = tiny
    x, y = mnist_tensors(folder, "train", verify=False)
    assert x.dtype == torch.float32 and x.shape == (5, 1, 28, 28)
    assert CAFFE_SCALE == 1 / 256
    assert x[0, 0, 0, 0].item() == 255 / 256
    np.testing.assert_array_equal(x[:, 0].numpy(), written["train"][0] / 256.0)
    assert y.dtype == torch.int64
    unit, _ = mnist_tensors(folder, "train", normalize="unit", verify=False)
    assert unit.max().item() == 1.0
    raw, _ = mnist_tensors(folder, "train", normalize="none", verify=False)
    assert raw.max().item() == 255.0
    with pytest.raises(ValueError, match="normalize"):
        mnist_tensors(folder, "train", normalize="torchvision", verify=False)


def test_unknown_split(tiny):
    with pytest.raises(ValueError, match="split 'val'"):
        load_mnist(tiny[0], "val")


# -- errors -------------------------------------------------------------------------------------


def test_missing_file_says_where_and_how(tiny):
    folder, _ = tiny
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(folder, "test", verify=False)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte" in msg
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in msg
    assert "download_mnist(" in msg
    # the train split is still fine
    load_mnist(folder, "train", verify=False)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder does not exist.*download_mnist"):
        load_mnist(tmp_path / "nowhere", "train")


def test_checksum_mismatch_names_file(tiny):
    folder, written = tiny
    # the tiny files are not the published ones
    with pytest.raises(MNISTChecksumError, match=r"train-images-idx3-ubyte\.gz.*sha256"):
        load_mnist(folder, "train")
    bad = dict(written["checksums"], **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(MNISTChecksumError, match=r"t10k-labels-idx1-ubyte\.gz.*md5 checksum"):
        load_mnist(folder, "test", checksums=bad)
    partial = {"t10k-images-idx3-ubyte.gz": written["checksums"]["t10k-images-idx3-ubyte.gz"]}
    with pytest.raises(MNISTChecksumError, match="no known checksum.*t10k-labels"):
        load_mnist(folder, "test", checksums=partial)


def test_bad_magic(tiny):
    folder, _ = tiny
    # a label file where the image file should be
    path = folder / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    with pytest.raises(MNISTFormatError, match=r"train-images-idx3-ubyte\.gz: bad magic number"):
        load_mnist(folder, "train", verify=False)
    path.write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(100)))
    with pytest.raises(MNISTFormatError, match="bad magic number 0x12345678"):
        load_mnist(folder, "train", verify=False)
    raw = folder / "x.idx"
    raw.write_bytes(b"PK\x03\x04" + bytes(8))
    with pytest.raises(MNISTFormatError, match=r"x\.idx: bad magic number.*not an IDX file"):
        read_idx(raw)


def test_truncated_data(tmp_path):
    folder = tmp_path / "m"
    _write_tiny(folder, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(
        MNISTFormatError, match=r"train-images-idx3-ubyte: truncated.*\(5, 28, 28\)"
    ):
        load_mnist(folder, "train", verify=False)
    path.write_bytes(path.read_bytes()[:10])  # inside the 16-byte header
    with pytest.raises(MNISTFormatError, match="train-images-idx3-ubyte: truncated.*header"):
        load_mnist(folder, "train", verify=False)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(MNISTFormatError, match="truncated.*magic"):
        load_mnist(folder, "train", verify=False)


def test_truncated_gzip(tiny):
    folder, _ = tiny
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MNISTFormatError, match=r"t10k-images-idx3-ubyte\.gz: truncated gzip"):
        load_mnist(folder, "test", verify=False)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(MNISTFormatError, match="not a valid gzip file"):
        load_mnist(folder, "test", verify=False)


def test_trailing_bytes_count_mismatch_and_bad_labels(tmp_path):
    folder = tmp_path / "m"
    _write_tiny(folder, gz=False)
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes() + b"\x00")
    with pytest.raises(MNISTFormatError, match="1 unexpected bytes after"):
        load_mnist(folder, "test", verify=False)
    write_idx(labels, np.zeros(4, dtype=np.uint8))
    with pytest.raises(MNISTFormatError, match="3 images but .* 4 labels"):
        load_mnist(folder, "test", verify=False)
    write_idx(labels, np.array([0, 10, 1], dtype=np.uint8))
    with pytest.raises(MNISTFormatError, match="label 10 outside 0..9"):
        load_mnist(folder, "test", verify=False)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 32, 32), dtype=np.uint8))
    with pytest.raises(MNISTFormatError, match="32x32, expected 28x28"):
        load_mnist(folder, "test", verify=False)


# -- download (offline, from file:// mirrors) ---------------------------------------------------


def test_download_from_mirrors(tmp_path):
    good = tmp_path / "good"
    written = _write_tiny(good)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in GZ_NAMES:
        (corrupt / name).write_bytes(b"junk")
    mirrors = [
        (tmp_path / "absent").as_uri() + "/",
        corrupt.as_uri(),  # no trailing slash: added
        good.as_uri() + "/",
    ]
    dest = tmp_path / "dest" / "mnist"
    assert download_mnist(dest, mirrors=mirrors, checksums=written["checksums"]) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(GZ_NAMES)
    images, labels = load_mnist(dest, "train", checksums=written["checksums"])
    np.testing.assert_array_equal(labels.numpy(), written["train"][1])

    # present and valid: nothing fetched (the only mirror is gone)
    download_mnist(dest, mirrors=[(tmp_path / "absent").as_uri()], checksums=written["checksums"])
    # a corrupted local file is replaced
    (dest / GZ_NAMES[1]).write_bytes(b"bad")
    download_mnist(dest, mirrors=[good.as_uri()], checksums=written["checksums"])
    assert _sha256(dest / GZ_NAMES[1]) == written["checksums"][GZ_NAMES[1]]


def test_download_fails_with_every_attempt(tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in GZ_NAMES:
        (corrupt / name).write_bytes(b"junk")
    dest = tmp_path / "dest"
    mirrors = [(tmp_path / "absent").as_uri(), corrupt.as_uri()]
    with pytest.raises(MNISTDownloadError) as info:
        download_mnist(dest, mirrors=mirrors)  # published checksums: junk does not match
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(dest) in msg
    assert "absent" in msg and "checksum mismatch" in msg
    assert not list(dest.iterdir())  # nothing half-written
    with pytest.raises(ValueError, match="no checksum given"):
        download_mnist(dest, mirrors=mirrors, checksums={GZ_NAMES[0]: "0" * 64})


# -- the published checksums and the real data --------------------------------------------------


def test_published_md5_constants():
    assert MD5 == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    assert set(SHA256) == set(GZ_NAMES) | {n.removesuffix(".gz") for n in GZ_NAMES}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in SHA256.values())


@pytest.mark.data
def test_real_mnist():
    if not REAL_MNIST.is_dir():
        pytest.skip(f"MNIST folder {REAL_MNIST} not found (set CHEMPRUNE_MNIST to the IDX folder)")
    for name in GZ_NAMES:
        path = REAL_MNIST / name
        if path.is_file():
            assert hashlib.md5(path.read_bytes()).hexdigest() == MD5[name]
    counts = {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    }
    means = {"train": 33.318, "test": 33.791}
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_mnist(REAL_MNIST, split)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert torch.bincount(labels, minlength=10).tolist() == counts[split]
        assert images.double().mean().item() == pytest.approx(means[split], abs=1e-3)
    x, y = mnist_tensors(REAL_MNIST, "test")
    assert x.shape == (10_000, 1, 28, 28) and 0.0 <= x.min() and x.max() <= 255 / 256


def test_uncompressed_file_wins_over_gz(tiny):
    folder, written = tiny
    labels = np.array([9, 9, 9], dtype=np.uint8)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    _, got = load_mnist(folder, "test", verify=False)
    assert got.tolist() == [9, 9, 9]
    # with verification, the raw file needs its own entry (no '.gz' in the name)
    with pytest.raises(MNISTChecksumError, match="no known checksum for 't10k-labels-idx1-ubyte'"):
        load_mnist(folder, "test", checksums=written["checksums"])
