"""MNIST from the four original IDX files (LeCun, Cortes, Burges), checksummed.

A folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each either gzipped (``.gz``, as published) or decompressed. The
uncompressed file is used when both are present. Every file is checked against the published
SHA-256 before it is parsed (``verify=False`` or a custom ``checksums`` map for other files).

The default folder is ``$CHEMPRUNE_MNIST``, else ``$CHEMPRUNE_CACHE/mnist`` (see
:func:`chemprune.molecules.data.qm9.cache_dir`); :func:`download_mnist` fills it from a public mirror.

IDX format: a 4-byte big-endian magic number ``0x0000TTNN`` (``TT`` the element type, ``NN`` the
number of dimensions), ``NN`` big-endian uint32 sizes, then the elements in C order, big-endian.
Images are ``0x00000803`` (uint8, 3-D: N x 28 x 28), labels ``0x00000801`` (uint8, 1-D: N).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SPLITS",
    "MNIST_FILES",
    "MD5",
    "SHA256",
    "SIZES",
    "MIRRORS",
    "CAFFE_SCALE",
    "MNISTError",
    "MNISTFormatError",
    "MNISTChecksumError",
    "MNISTDownloadError",
    "default_mnist_dir",
    "read_idx",
    "write_idx",
    "load_mnist",
    "mnist_tensors",
    "download_mnist",
]

PathLike = str | os.PathLike[str]

SPLITS = ("train", "test")
# split -> (images file, labels file), without the ``.gz`` suffix
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_EXAMPLES = {"train": 60_000, "test": 10_000}
IMAGE_SIZE = 28
NUM_CLASSES = 10
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# Published checksums of the original gzip files (the MD5s are the ones in torchvision's mnist.py).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# SHA-256 of the gzip files and of the decompressed files.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
# Tried in order; each serves the four ``.gz`` files under these names.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# Caffe's MNIST examples scale pixels by 0.00390625 = 1/256 (exact in float32).
CAFFE_SCALE = 0.00390625
_NORMALIZE = ("caffe", "unit", "none")

# IDX element type code -> numpy dtype (big-endian on disk)
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


class MNISTError(ValueError):
    """Base class for MNIST file problems (a ``ValueError``)."""


class MNISTFormatError(MNISTError):
    """A file is not a valid IDX file of the expected kind (magic, shape, truncation)."""


class MNISTChecksumError(MNISTError):
    """A file's checksum does not match the published one."""


class MNISTDownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


def default_mnist_dir() -> Path:
    """``$CHEMPRUNE_MNIST`` if set, else ``<chemprune cache>/mnist``."""
    env = os.environ.get("CHEMPRUNE_MNIST")
    if env:
        return Path(env).expanduser()
    from chemprune.molecules.data.qm9 import cache_dir

    return cache_dir() / "mnist"


# --------------------------------------------------------------------------------------------
# IDX reading and writing


def _decompress(data: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError as err:
        raise MNISTFormatError(
            f"{source}: truncated gzip file ({len(data):,} bytes; {err})"
        ) from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise MNISTFormatError(f"{source}: not a valid gzip file ({err})") from err


def _decode_idx(data: bytes, source: str, expected_magic: int | None = None) -> np.ndarray:
    """Parse IDX bytes into a native-endian, writable array; errors name ``source``."""
    if len(data) < 4:
        raise MNISTFormatError(
            f"{source}: truncated: {len(data)} bytes, too short for the 4-byte IDX magic number"
        )
    (magic,) = struct.unpack(">I", data[:4])
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if expected_magic is not None and magic != expected_magic:
        raise MNISTFormatError(
            f"{source}: bad magic number 0x{magic:08X}, expected 0x{expected_magic:08X}"
        )
    if magic >> 16 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise MNISTFormatError(f"{source}: bad magic number 0x{magic:08X}: not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTFormatError(
            f"{source}: truncated: {len(data)} bytes, the {ndim}-D IDX header needs {header}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    count = math.prod(dims)
    need = count * dtype.itemsize
    have = len(data) - header
    if have < need:
        raise MNISTFormatError(
            f"{source}: truncated: header says shape {tuple(dims)} ({need:,} data bytes) "
            f"but only {have:,} data bytes follow"
        )
    if have > need:
        raise MNISTFormatError(
            f"{source}: {have - need:,} unexpected bytes after the data of shape {tuple(dims)}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _hexdigest(data: bytes, expected: str) -> tuple[str, str]:
    algo = {32: "md5", 64: "sha256"}.get(len(expected))
    if algo is None:
        raise ValueError(f"checksum {expected!r} is neither an MD5 (32 hex) nor a SHA-256 (64 hex)")
    return algo, hashlib.new(algo, data).hexdigest()


def _verify(
    data: bytes, path: Path, checksums: Mapping[str, str], *, source: str | None = None
) -> None:
    """Check ``data`` (the bytes of ``path``, or of ``source`` for a download) against the map."""
    source = source or str(path)
    expected = checksums.get(path.name)
    if expected is None:
        raise MNISTChecksumError(
            f"{source}: no known checksum for {path.name!r} (known: {sorted(checksums)}); "
            "pass verify=False to skip the check"
        )
    algo, actual = _hexdigest(data, expected.lower())
    if actual != expected.lower():
        size = SIZES.get(path.name) if checksums is SHA256 else None
        sizes = f"; it has {len(data):,} bytes" + (
            f", the original has {size:,}" if size is not None else ""
        )
        hint = (
            "corrupt, truncated or a different file; delete it and run download_mnist, "
            "or pass verify=False"
            if source == str(path)
            else "corrupt or a different file"
        )
        raise MNISTChecksumError(
            f"{source}: {algo} checksum mismatch: got {actual}, expected {expected.lower()}"
            f"{sizes} ({hint})"
        )


def read_idx(path: PathLike, *, checksum: str | None = None) -> np.ndarray:
    """Read an IDX file (gzipped when the name ends in ``.gz``) into a native-endian array.

    ``checksum``: an MD5 or SHA-256 hex digest of the file as stored; checked before parsing.
    """
    path = Path(path)
    data = path.read_bytes()
    if checksum is not None:
        _verify(data, path, {path.name: checksum})
    if path.suffix == ".gz":
        data = _decompress(data, str(path))
    return _decode_idx(data, str(path))


def write_idx(path: PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Write ``array`` as an IDX file (gzipped when the name ends in ``.gz``); returns the path."""
    path = Path(path)
    arr = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    code = _DTYPE_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {arr.dtype} (uint8, int8, int16/32, float32/64)")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    header = struct.pack(f">I{arr.ndim}I", (code << 8) | arr.ndim, *arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# MNIST


def _find(folder: Path, name: str) -> Path:
    candidates = [folder / name, folder / f"{name}.gz"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = "" if folder.is_dir() else " (the folder does not exist)"
    raise FileNotFoundError(
        f"MNIST file {name}(.gz) not found: looked for {candidates[0]} and {candidates[1]}{where}; "
        f"download_mnist({str(folder)!r}) fetches the four original files"
    )


def _load_file(
    folder: Path, name: str, magic: int, verify: bool, checksums: Mapping[str, str]
) -> np.ndarray:
    path = _find(folder, name)
    data = path.read_bytes()
    if verify:
        _verify(data, path, checksums)
    if path.suffix == ".gz":
        data = _decompress(data, str(path))
    return _decode_idx(data, str(path), expected_magic=magic)


def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; expected one of {list(SPLITS)}")


def load_mnist(
    path: PathLike | None = None,
    split: str = "train",
    *,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 ``[N, 28, 28]``) and labels (int64 ``[N]``) of one split.

    ``path``: the folder with the IDX files (default :func:`default_mnist_dir`). ``split``:
    ``"train"`` (60,000) or ``"test"`` (10,000, the ``t10k`` files). ``checksums`` maps file
    names (with ``.gz`` for gzipped files) to MD5 or SHA-256 digests; default :data:`SHA256`.

    Raises ``FileNotFoundError`` for a missing file, :class:`MNISTChecksumError` for a checksum
    mismatch and :class:`MNISTFormatError` for a bad magic number, shape or truncated file.
    """
    _check_split(split)
    folder = Path(path).expanduser() if path is not None else default_mnist_dir()
    table = SHA256 if checksums is None else checksums
    images_name, labels_name = MNIST_FILES[split]
    images = _load_file(folder, images_name, IMAGES_MAGIC, verify, table)
    labels = _load_file(folder, labels_name, LABELS_MAGIC, verify, table)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise MNISTFormatError(
            f"{folder / images_name}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    if len(images) != len(labels):
        raise MNISTFormatError(
            f"{folder / images_name} has {len(images):,} images but {folder / labels_name} "
            f"has {len(labels):,} labels"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise MNISTFormatError(
            f"{folder / labels_name}: label {int(labels.max())} outside 0..{NUM_CLASSES - 1}"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def mnist_tensors(
    path: PathLike | None = None,
    split: str = "train",
    *,
    normalize: str = "caffe",
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 images ``[N, 1, 28, 28]`` and int64 labels ``[N]``, ready for a model.

    ``normalize``: ``"caffe"`` multiplies by 0.00390625 (1/256, as Caffe's MNIST examples);
    ``"unit"`` divides by 255; ``"none"`` keeps 0..255.
    """
    if normalize not in _NORMALIZE:
        raise ValueError(f"unknown normalize {normalize!r}; expected one of {list(_NORMALIZE)}")
    images, labels = load_mnist(path, split, verify=verify, checksums=checksums)
    x = images.unsqueeze(1).to(torch.float32)
    if normalize == "caffe":
        x.mul_(CAFFE_SCALE)
    elif normalize == "unit":
        x.div_(255.0)
    return x, labels


# --------------------------------------------------------------------------------------------
# Download


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "chemprune (MNIST download)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def download_mnist(
    path: PathLike | None = None,
    *,
    mirrors: Sequence[str] = MIRRORS,
    checksums: Mapping[str, str] | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download the four original ``.gz`` files into ``path`` (created if needed); returns it.

    Each mirror URL is a prefix the file name is appended to; they are tried in order until one
    delivers a file whose checksum (``checksums``, default :data:`SHA256`) matches. Files already
    present with the right checksum are kept unless ``force``. Files are written atomically.
    Raises :class:`MNISTDownloadError` (an ``OSError``) listing every failed attempt.
    """
    folder = Path(path).expanduser() if path is not None else default_mnist_dir()
    table = SHA256 if checksums is None else checksums
    if not mirrors:
        raise ValueError("no mirrors given")
    unknown = [f"{b}.gz" for s in SPLITS for b in MNIST_FILES[s] if f"{b}.gz" not in table]
    if unknown:
        raise ValueError(f"no checksum given for {unknown}; cannot verify a download")
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for base in MNIST_FILES[split]:
            target = folder / f"{base}.gz"
            if target.is_file() and not force:
                try:
                    _verify(target.read_bytes(), target, table)
                    continue
                except MNISTChecksumError:
                    pass  # replace it
            failures: list[str] = []
            for mirror in mirrors:
                url = mirror if mirror.endswith("/") else f"{mirror}/"
                url += target.name
                try:
                    data = _fetch(url, timeout)
                    _verify(data, target, table, source=url)
                except MNISTChecksumError as err:
                    failures.append(str(err))
                    continue
                except (OSError, ValueError) as err:
                    failures.append(f"{url}: {err}")
                    continue
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                break
            else:
                raise MNISTDownloadError(
                    f"could not download {target.name} into {folder}:\n  " + "\n  ".join(failures)
                )
    return folder
