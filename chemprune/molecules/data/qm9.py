"""QM9 from the PyPI package ``qm9pack``: 130,831 molecules, read once, cached as ``.npz``.

``qm9pack`` ships its data as CSV files (``data/qm9_part{1,2,3}.csv`` with XYZ coordinates in
Angstrom and properties in hartree, plus ``qm9_polarizability.csv``). ``import qm9pack`` needs
``pkg_resources``, so the files are located without importing it.

The cache (``$CHEMPRUNE_CACHE/qm9/``, default ``~/.cache/chemprune/qm9/``) holds one ``.npz``
without pickled objects and a JSON manifest; a missing, truncated or inconsistent cache is
rebuilt, with a warning, instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import numpy as np

from chemprune.molecules.data.targets import (
    ATOM_REFERENCE_HARTREE,
    SOURCE_COLUMNS,
    SYMBOL_TO_Z,
    Target,
    get_target,
)

__all__ = [
    "QM9_NUM_MOLECULES",
    "CSV_FILES",
    "QM9Data",
    "cache_dir",
    "qm9pack_data_dir",
    "read_qm9_csv",
    "load_qm9",
    "load_dataset",
    "atomize",
]

log = logging.getLogger(__name__)

QM9_NUM_MOLECULES = 130_831
CSV_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
POLARIZABILITY_FILE = "qm9_polarizability.csv"
CACHE_VERSION = 1
_CACHE_NAME = f"qm9_v{CACHE_VERSION}.npz"


class QM9FormatError(ValueError):
    """A QM9 source file does not have the expected content."""


def cache_dir() -> Path:
    """Root of chemprune's caches: ``$CHEMPRUNE_CACHE`` or ``$XDG_CACHE_HOME/chemprune``."""
    env = os.environ.get("CHEMPRUNE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "chemprune"


def qm9pack_data_dir() -> Path:
    """The ``data/`` folder of the installed ``qm9pack`` (located without importing it)."""
    spec = util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the QM9 data package 'qm9pack' is not installed (pip install qm9pack)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass
class QM9Data:
    """Molecules as flat arrays: atoms of molecule ``m`` are ``ptr[m]:ptr[m + 1]``.

    Attributes:
        z: ``[num_atoms]`` atomic numbers (uint8).
        pos: ``[num_atoms, 3]`` positions in Angstrom (float32).
        ptr: ``[num_molecules + 1]`` atom offsets (int64).
        props: ``[num_molecules, len(columns)]`` raw properties in the source units (float64).
        columns: names of the ``props`` columns (qm9pack CSV column names).
        ids: ``[num_molecules]`` QM9 molecule numbers (``dsgdb9nsd_NNNNNN``).
        smiles: ``[num_molecules]`` SMILES of the relaxed geometry (GDB-17 string from QM9).
    """

    z: np.ndarray
    pos: np.ndarray
    ptr: np.ndarray
    props: np.ndarray
    columns: tuple[str, ...]
    ids: np.ndarray
    smiles: np.ndarray

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_atoms(self) -> np.ndarray:
        return np.diff(self.ptr)

    def molecule(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(z, pos)`` of one molecule."""
        a, b = self.ptr[index], self.ptr[index + 1]
        return self.z[a:b], self.pos[a:b]

    def target_values(self, target: Target | str) -> np.ndarray:
        """Values of ``target`` for every molecule, in the target's unit (float64)."""
        t = get_target(target) if isinstance(target, str) else target
        try:
            col = self.columns.index(t.column)
        except ValueError:
            raise KeyError(
                f"column {t.column!r} for target {t.name!r} is not in the data"
            ) from None
        raw = self.props[:, col]
        if t.atomization_of is not None:
            raw = atomize(raw, self.z, self.ptr, t.atomization_of)
        return raw * t.factor

    def validate(self) -> None:
        """Raise :class:`QM9FormatError` if the arrays are inconsistent."""
        n = len(self)
        problems = []
        if self.ptr[0] != 0 or np.any(np.diff(self.ptr) < 1):
            problems.append("atom offsets are not increasing")
        if self.ptr[-1] != len(self.z) or self.pos.shape != (len(self.z), 3):
            problems.append("atom arrays do not match the offsets")
        if self.props.shape != (n, len(self.columns)):
            problems.append(f"property table has shape {self.props.shape}")
        if len(self.ids) != n or len(self.smiles) != n:
            problems.append("ids/smiles do not match the number of molecules")
        if not np.all(np.isfinite(self.pos)):
            problems.append("non-finite coordinates")
        if problems:
            raise QM9FormatError("; ".join(problems))


def atomize(total: np.ndarray, z: np.ndarray, ptr: np.ndarray, kind: str) -> np.ndarray:
    """Atomization energy ``E_mol - sum_atoms E_atom`` (hartree) from total energies (hartree)."""
    refs = ATOM_REFERENCE_HARTREE[kind]
    table = np.zeros(max(max(refs), int(z.max()) if len(z) else 0) + 1)
    for zz, e in refs.items():
        table[zz] = e
    unknown = set(np.unique(z).tolist()) - set(refs)
    if unknown:
        raise ValueError(f"no {kind} atom reference for elements Z={sorted(unknown)}")
    per_atom = table[z]
    ref_sum = np.add.reduceat(per_atom, ptr[:-1]) if len(per_atom) else np.zeros(len(ptr) - 1)
    return total - ref_sum


_NUMBER_FIX = re.compile(r"\*\^")


def _parse_flat_numbers(strings: Sequence[str], what: str) -> np.ndarray:
    text = " ".join(strings)
    text = _NUMBER_FIX.sub("e", text).translate(str.maketrans("[],", "   "))
    try:
        return np.array(text.split(), dtype=np.float64)
    except ValueError as err:
        raise QM9FormatError(f"malformed {what}: {err}") from None


def read_qm9_csv(
    files: Sequence[os.PathLike | str], polarizability: os.PathLike | str | None = None
) -> QM9Data:
    """Parse qm9pack-format CSV files into :class:`QM9Data`.

    Args:
        files: the ``qm9_part*.csv`` files (any number, concatenated in order).
        polarizability: optional ``qm9_polarizability.csv``; it is only checked for matching
            molecule names (the isotropic polarizability used as target is already in the parts).

    Raises:
        QM9FormatError: a missing column, malformed coordinates, unknown elements or a mismatch
            between ``N_atoms`` and the coordinates, naming the file.
    """
    import pandas as pd

    needed = ["XYZ_file", "Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", *SOURCE_COLUMNS]
    frames = []
    for f in files:
        path = Path(f)
        try:
            df = pd.read_csv(path, usecols=lambda c: c in needed, dtype={"SMILES": str})
        except FileNotFoundError:
            raise
        except Exception as err:  # pandas raises several types for broken CSV
            raise QM9FormatError(f"{path}: cannot read as CSV ({err})") from None
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise QM9FormatError(f"{path}: missing columns {missing}")
        if len(df) == 0:
            raise QM9FormatError(f"{path}: no molecules")
        frames.append((path, df))
    if not frames:
        raise QM9FormatError("no QM9 CSV files given")

    zs, poss, counts, props, ids, smiles = [], [], [], [], [], []
    for path, df in frames:
        n_atoms = df["N_atoms"].to_numpy(np.int64)
        coords = _parse_flat_numbers(df["XYZ_Ang"].tolist(), f"coordinates in {path}")
        if coords.size != 3 * n_atoms.sum():
            raise QM9FormatError(
                f"{path}: {coords.size} coordinates for {n_atoms.sum()} atoms (truncated file?)"
            )
        symbols = (
            " ".join(df["Elements"].tolist()).translate(str.maketrans("[],'\"", "     ")).split()
        )
        if len(symbols) != n_atoms.sum():
            raise QM9FormatError(
                f"{path}: {len(symbols)} element symbols for {n_atoms.sum()} atoms"
            )
        try:
            z = np.array([SYMBOL_TO_Z[s] for s in symbols], dtype=np.uint8)
        except KeyError as err:
            raise QM9FormatError(f"{path}: unsupported element {err.args[0]!r}") from None
        table = df[list(SOURCE_COLUMNS)].to_numpy(np.float64)
        if not np.all(np.isfinite(table)):
            bad = int(np.argwhere(~np.isfinite(table))[0, 0])
            raise QM9FormatError(f"{path}: missing or non-numeric property in row {bad + 2}")
        zs.append(z)
        poss.append(coords.reshape(-1, 3).astype(np.float32))
        counts.append(n_atoms)
        props.append(table)
        ids.append(df["Index"].to_numpy(np.int32))
        smiles.append(df["SMILES"].astype(str).to_numpy())

    count = np.concatenate(counts)
    ptr = np.zeros(len(count) + 1, dtype=np.int64)
    np.cumsum(count, out=ptr[1:])
    data = QM9Data(
        z=np.concatenate(zs),
        pos=np.concatenate(poss),
        ptr=ptr,
        props=np.concatenate(props),
        columns=tuple(SOURCE_COLUMNS),
        ids=np.concatenate(ids),
        smiles=np.concatenate(smiles).astype(str),
    )
    if polarizability is not None:
        pol = pd.read_csv(polarizability, usecols=["XYZ_file"])
        names = {f"dsgdb9nsd_{i:06d}.xyz" for i in data.ids.tolist()}
        if not names.issubset(set(pol["XYZ_file"])):
            raise QM9FormatError(f"{polarizability}: molecule names do not match the parts")
    data.validate()
    return data


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def _changed_sources(files: Sequence[Path], manifest: dict) -> list[str]:
    """The source files whose contents differ from those the cache was built from (by size and
    modification time first, by SHA-256 where those changed)."""
    hashes, stats = manifest.get("source_files") or {}, manifest.get("source_stat") or {}
    changed = []
    for f in files:
        if stats.get(f.name) == _stat(f):
            continue
        if hashes.get(f.name) != _sha256(f):
            changed.append(f.name)
    return changed


def _save_cache(data: QM9Data, path: Path, manifest: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                z=data.z,
                pos=data.pos,
                ptr=data.ptr,
                props=data.props,
                columns=np.array(data.columns),
                ids=data.ids,
                smiles=data.smiles,
            )
            fh.flush()
            os.fsync(fh.fileno())
        manifest = dict(manifest, cache_sha256=_sha256(Path(tmp)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_manifest(path, manifest)


def _write_manifest(path: Path, manifest: dict) -> None:
    mtmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    mtmp.write_text(json.dumps(manifest, indent=2))
    os.replace(mtmp, path.with_suffix(".json"))


def _load_cache(path: Path) -> QM9Data:
    with np.load(path, allow_pickle=False) as npz:
        data = QM9Data(
            z=npz["z"],
            pos=npz["pos"],
            ptr=npz["ptr"],
            props=npz["props"],
            columns=tuple(str(c) for c in npz["columns"]),
            ids=npz["ids"],
            smiles=npz["smiles"],
        )
    data.validate()
    return data


def load_qm9(
    cache: os.PathLike | str | None = None,
    *,
    source_dir: os.PathLike | str | None = None,
    rebuild: bool = False,
) -> QM9Data:
    """Load QM9, building the cache from ``qm9pack`` the first time (about half a minute).

    Args:
        cache: cache root (default :func:`cache_dir`); the files go in ``<cache>/qm9/``.
        source_dir: folder with qm9pack's CSV files (default: the installed package's).
        rebuild: ignore an existing cache.
    """
    root = Path(cache) if cache is not None else cache_dir()
    name = _CACHE_NAME
    if source_dir is not None:
        # a user-supplied folder gets its own cache file, keyed by its resolved path
        key = hashlib.sha256(str(Path(source_dir).resolve()).encode()).hexdigest()[:10]
        name = f"qm9_v{CACHE_VERSION}_{key}.npz"
    path = root / "qm9" / name
    src = Path(source_dir) if source_dir is not None else qm9pack_data_dir()
    files = [src / name for name in CSV_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if path.exists() and not rebuild:
        try:
            data = _load_cache(path)
            manifest = json.loads(path.with_suffix(".json").read_text())
            if manifest.get("num_molecules") != len(data):
                raise QM9FormatError("manifest and cache disagree on the number of molecules")
            changed = [] if missing else _changed_sources(files, manifest)
            if not changed:
                stat = {f.name: _stat(f) for f in files if f.exists()}
                if manifest.get("source_stat") != stat:  # same contents, touched: remember
                    _write_manifest(path, dict(manifest, source_stat=stat))
                return data
            log.warning(
                "QM9 cache %s was built from other versions of %s; rebuilding it",
                path,
                ", ".join(changed),
            )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, QM9FormatError) as err:
            log.warning("QM9 cache %s is unreadable (%s); rebuilding it", path, err)

    if missing:
        raise FileNotFoundError(f"QM9 source files not found: {', '.join(missing)}")
    pol = src / POLARIZABILITY_FILE
    data = read_qm9_csv(files, pol if pol.exists() else None)
    try:
        version = metadata.version("qm9pack")
    except metadata.PackageNotFoundError:
        version = None
    manifest = {
        "source": "qm9pack",
        "source_version": version,
        "source_files": {f.name: _sha256(f) for f in files},
        "source_stat": {f.name: _stat(f) for f in files},
        "num_molecules": len(data),
        "num_atoms": int(len(data.z)),
        "cache_version": CACHE_VERSION,
    }
    _save_cache(data, path, manifest)
    log.info("QM9 cache written to %s (%d molecules)", path, len(data))
    return data


def load_dataset(data_dir: os.PathLike | str | None) -> tuple[QM9Data, str, Path]:
    """QM9 from qm9pack (``data_dir`` None) or a folder of qm9pack-format CSVs (``--data-dir``):
    ``(data, a line naming the source and its size, the folder of its splits)``."""
    if data_dir is None:
        data = load_qm9()
        source = f"qm9pack {metadata.version('qm9pack')}"
        splits = cache_dir() / "qm9" / "splits"
    else:
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"--data-dir {data_dir} is not a folder")
        data = load_qm9(source_dir=data_dir)
        source = f"qm9-format CSV in {Path(data_dir).resolve()}"
        key = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]
        splits = cache_dir() / "qm9" / f"splits_{key}"
    return data, f"{source} ({len(data)} molecules)", splits
