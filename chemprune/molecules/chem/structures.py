"""Molecular structures from SMILES strings and structure files, ready for SchNet.

Everything here is model-free: SMILES are embedded in 3D with RDKit (ETKDGv3, then an MMFF94
relaxation), files are read with ASE, and every failure raises :class:`StructureError` with a
message that names the offending input (the SMILES string, or the file and frame) and says what
is wrong with it.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from chemprune.molecules.chem.inputs import (
    STDIN,
    InputFileError,
    decode_text,
    is_stream,
    read_input_bytes,
)
from chemprune.molecules.chem.sanity import (
    DEFAULT_LIMITS,
    Limits,
    StructureError,
    check_atom_count,
    check_geometry,
    check_smiles_text,
    symbol,
)
from chemprune.molecules.data.targets import ELEMENTS

__all__ = [
    "StructureError",
    "Structure",
    "check_elements",
    "smiles_to_structure",
    "read_structure_file",
    "read_smiles_file",
    "structures_to_batch",
]


@dataclass
class Structure:
    """One molecule.

    Attributes:
        name: display name (the SMILES string, ``file`` or ``file#k`` for frame ``k``).
        z: ``[N]`` int64 atomic numbers.
        pos: ``[N, 3]`` float64 positions in Angstrom.
        source: where it came from: ``"smiles"`` or the file path.
        fragments: disconnected fragments of a SMILES (placed apart, see
            :func:`smiles_to_structure`).
    """

    name: str
    z: np.ndarray
    pos: np.ndarray
    source: str
    fragments: int = 1


def check_elements(z: Iterable[int], name: str, allowed: Sequence[str] = ELEMENTS) -> None:
    """Raise if any atom is of an element the models were not trained on.

    Args:
        z: atomic numbers.
        name: the input to name in the error message.
        allowed: element symbols that are accepted.

    Raises:
        StructureError: ``"<name>: element(s) Cl, S not supported (model trained on H, C, N,
            O, F)"``, the offending symbols sorted alphabetically.
    """
    allowed_set = set(allowed)
    bad = sorted({symbol(int(zi)) for zi in np.asarray(z).reshape(-1)} - allowed_set)
    if bad:
        raise StructureError(
            f"{name}: element(s) {', '.join(bad)} not supported "
            f"(model trained on {', '.join(allowed)})"
        )


def _capture_rdkit():
    """Context manager capturing RDKit's error log (``.messages``), or just silencing it."""
    from rdkit import rdBase

    if hasattr(rdBase, "CaptureErrorLog"):
        return rdBase.CaptureErrorLog()
    return rdBase.BlockLogs()


def _parse_reason(log: str) -> str:
    """Turn RDKit's SMILES parse log into a short reason, e.g. ``unclosed ring``."""
    lines = [re.sub(r"^\[[\d:.]+\]\s*", "", ln).strip() for ln in log.splitlines()]
    lines = [ln.removeprefix("SMILES Parse Error:").strip() for ln in lines if ln]
    if not lines:
        return "RDKit could not parse it"
    reason = re.split(r" (?:for input|while parsing):", lines[0])[0].strip()
    for ln in lines[1:]:
        m = re.match(r"check for mistakes around position (\d+)", ln)
        if m:
            reason += f" (around position {m.group(1)})"
            break
    return reason or "RDKit could not parse it"


FRAGMENT_MODES = ("separate", "refuse")


def _embed(mol, *, seed: int, max_attempts: int, optimize: bool) -> np.ndarray | None:
    """ETKDGv3 coordinates of ``mol`` (hydrogens present), relaxed by MMFF94 or UFF; ``None``
    when every attempt fails."""
    from rdkit.Chem import AllChem

    params = AllChem.ETKDGv3()
    conf_id = -1
    for attempt in range(max(1, int(max_attempts))):
        params.randomSeed = int(seed) + attempt
        params.useRandomCoords = attempt > 0
        with _capture_rdkit():
            conf_id = AllChem.EmbedMolecule(mol, params)
        if conf_id >= 0:
            break
    if conf_id < 0:
        return None
    if optimize:
        with _capture_rdkit():
            try:
                if AllChem.MMFFHasAllMoleculeParams(mol):
                    AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
                elif AllChem.UFFHasAllMoleculeParams(mol):
                    AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
            except (RuntimeError, ValueError):
                pass  # keep the ETKDG geometry
    pos = np.asarray(mol.GetConformer(conf_id).GetPositions(), dtype=np.float64)
    return pos if np.isfinite(pos).all() else None


def _place_apart(parts: list[np.ndarray], gap: float) -> list[np.ndarray]:
    """Fragments' coordinates moved along x so that neighbours are ``gap`` A apart or more
    (each centred on its own centroid in y and z)."""
    placed, cursor = [], 0.0
    for pos in parts:
        pos = pos - pos.mean(axis=0)
        shift = cursor - pos[:, 0].min() if placed else 0.0
        pos = pos + np.array([shift, 0.0, 0.0])
        placed.append(pos)
        cursor = pos[:, 0].max() + gap
    return placed


def smiles_to_structure(
    smiles: str,
    *,
    seed: int = 0xF00D,
    max_attempts: int = 3,
    optimize: bool = True,
    fragments: str = "separate",
    fragment_gap: float = 10.0,
    limits: Limits = DEFAULT_LIMITS,
) -> Structure:
    """Embed a SMILES string in 3D (hydrogens added).

    The text is checked first (SMILES characters only, see
    :func:`chemprune.molecules.chem.sanity.check_smiles_text`), then the elements and the atom count,
    before any embedding work. Coordinates come from RDKit's ETKDGv3 with ``randomSeed=seed``
    (later attempts use random starting coordinates and ``seed + k``), then an MMFF94 relaxation
    (UFF where MMFF lacks parameters; the ETKDG geometry where neither applies). The same
    ``seed`` gives the same geometry.

    The models are for neutral molecules (QM9): a SMILES whose formal charges do not sum to
    zero (``[NH4+]``, ``C[O-]``, ``[C+5]``) is refused. Charges that cancel are accepted: a
    nitro group ``[N+](=O)[O-]``, a zwitterion ``[NH3+]CC(=O)[O-]``, an ion pair given as
    fragments. Radicals (``[CH3]``) are not checked.

    A multi-fragment SMILES (a salt, a solvate, ``C.C``) is, with ``fragments="separate"``,
    embedded fragment by fragment and the fragments placed ``fragment_gap`` A apart along x:
    beyond the model's cutoff they do not interact (embedded as one molecule they would overlap,
    closest atoms 0.0-0.4 A apart, and the model's value would mean nothing). With
    ``fragments="refuse"`` such a SMILES is an error.

    Args:
        smiles: the SMILES string.
        seed: random seed of the embedding.
        max_attempts: embedding attempts before giving up.
        optimize: relax the embedded geometry with a force field.
        fragments: ``"separate"`` or ``"refuse"`` (see above).
        fragment_gap: closest distance between two fragments' atoms, Angstrom.
        limits: size and geometry limits (:class:`chemprune.molecules.chem.sanity.Limits`).

    Returns:
        The structure, named after the SMILES, with ``source="smiles"`` and ``fragments`` set.

    Raises:
        StructureError: ``"invalid SMILES '<s>': <reason>"`` (empty string, a character that is
            not SMILES, parse or valence error), unsupported elements, ``"SMILES '<s>' has net
            charge +1; the models are for neutral molecules"``, too many atoms, a refused
            multi-fragment SMILES, or ``"could not embed 3D coordinates for SMILES '<s>'"``.
    """
    from rdkit import Chem

    if fragments not in FRAGMENT_MODES:
        raise ValueError(f"fragments must be one of {FRAGMENT_MODES}, got {fragments!r}")
    if not (np.isfinite(fragment_gap) and fragment_gap > 0):
        raise ValueError(f"fragment_gap must be a positive number of Angstrom, got {fragment_gap}")
    text = check_smiles_text(smiles, limits)
    shown = repr(text) if len(text) <= 80 else repr(text[:72] + "...")
    with _capture_rdkit() as log:
        mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        raise StructureError(
            f"invalid SMILES {shown}: {_parse_reason(getattr(log, 'messages', ''))}"
        )
    if mol.GetNumAtoms() == 0:
        raise StructureError(f"invalid SMILES {shown}: no atoms")
    if any(x.HasQuery() for x in (*mol.GetBonds(), *mol.GetAtoms())):  # '~': a pattern
        raise StructureError(
            f"invalid SMILES {shown}: holds a query ('~' any-bond or similar), not a molecule"
        )
    check_elements([a.GetAtomicNum() for a in mol.GetAtoms()], f"SMILES {shown}")
    try:
        with _capture_rdkit():
            Chem.SanitizeMol(mol)
    except Exception as err:  # AtomValenceException, KekulizeException, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StructureError(f"invalid SMILES {shown}: {reason}") from None
    charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    if charge:
        raise StructureError(
            f"SMILES {shown} has net charge {charge:+d}; the models are for neutral molecules"
        )

    mol = Chem.AddHs(mol)
    if mol.GetNumAtoms() > limits.max_smiles_atoms:
        raise StructureError(
            f"SMILES {shown}: {mol.GetNumAtoms():,} atoms with hydrogens, more than the limit of "
            f"{limits.max_smiles_atoms:,} for a 3D embedding (its cost grows steeply: about 10 s "
            "at 300 atoms, minutes at 600); give a structure file instead"
        )
    mapping: list[tuple[int, ...]] = []
    if len(Chem.GetMolFrags(mol)) == 1:
        parts, mapping = (mol,), [tuple(range(mol.GetNumAtoms()))]
    else:
        try:
            parts = Chem.GetMolFrags(
                mol, asMols=True, sanitizeFrags=True, fragsMolAtomMapping=mapping
            )
        except Exception as err:  # a fragment that does not sanitize on its own
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StructureError(f"invalid SMILES {shown}: {reason}") from None
    if len(parts) > 1 and fragments == "refuse":
        raise StructureError(
            f"SMILES {shown} has {len(parts)} disconnected fragments; give one molecule per "
            "SMILES (or let the fragments be placed apart)"
        )
    pos = np.zeros((mol.GetNumAtoms(), 3))
    coords = []
    for k, part in enumerate(parts):
        xyz = _embed(part, seed=seed + 7919 * k, max_attempts=max_attempts, optimize=optimize)
        if xyz is None:
            what = f" (fragment {k + 1} of {len(parts)})" if len(parts) > 1 else ""
            raise StructureError(f"could not embed 3D coordinates for SMILES {shown}{what}")
        coords.append(xyz)
    for idx, xyz in zip(mapping, _place_apart(coords, fragment_gap), strict=True):
        pos[list(idx)] = xyz

    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    try:
        check_geometry(z, pos, f"SMILES {shown}", limits)
    except StructureError as err:
        raise StructureError(f"{err} (the 3D embedding failed; try another --seed)") from None
    return Structure(name=text, z=z, pos=pos, source="smiles", fragments=len(parts))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and err.args:
        return f"unknown element or field {err.args[0]!r}"
    line = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"^ase\.io\.\w+:\s*", "", line)


def _read(path: os.PathLike | str, kind: str, limits: Limits) -> tuple[bytes, str]:
    """The bytes of an input file (``-``: standard input; pipes and ``/proc`` files too), its
    size limit checked while reading; every refusal a :class:`StructureError`."""
    try:
        return read_input_bytes(path, what=kind, max_bytes=limits.max_file_bytes)
    except InputFileError as err:
        raise StructureError(str(err)) from None


def _decode(data: bytes, kind: str, label: str) -> str:
    try:
        return decode_text(data, kind, label)
    except InputFileError as err:
        raise StructureError(str(err)) from None


XYZ_SUFFIXES = (".xyz", ".extxyz")
XYZ_FORMATS = ("xyz", "extxyz")


def _scan_xyz(text: str, label: str, limits: Limits) -> None:
    """Walk an XYZ file's count lines before ASE reads it: a count above ``limits.max_atoms``, a
    negative one, a file that ends inside a frame or holds too many frames is refused here (ASE
    would try to read 10**12 atoms, or fail with a bare ``StopIteration``). ``text`` is what ASE
    will read, line endings as ASE sees them."""
    frame, lineno, blank = 0, 0, 0
    lines = iter(io.StringIO(text, newline=None))
    for raw in lines:
        lineno += 1
        line = raw.strip()
        if not line:
            blank = blank or lineno  # fine after the last frame only
            continue
        if blank and frame:
            raise StructureError(
                f"{label}: blank line {blank} between frames {frame} and {frame + 1}; ASE "
                "stops reading there and would drop the frames after it: remove it"
            )
        try:
            count = int(line.split()[0])
        except ValueError:
            return  # not a plain count line: let ASE judge the format
        frame += 1
        where = f"{label} (frame {frame}, line {lineno})"
        if count < 0:
            raise StructureError(f"{where}: negative atom count {count}")
        check_atom_count(count, where, limits)
        if frame > limits.max_molecules:
            raise StructureError(
                f"{label}: more than {limits.max_molecules:,} structures in one file"
            )
        for k in range(count + 1):  # the comment line, then the atoms
            if next(lines, None) is None:
                got = max(k - 1, 0)
                raise StructureError(
                    f"{where}: truncated: the frame declares {count} atoms but the file "
                    f"ends after {got}"
                )
            lineno += 1


class _NamedBytes(io.BytesIO):
    """Bytes with a file name, for ASE's format guess (by name, then by content)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _structure_format(data: bytes, path: str, stream: bool, label: str) -> str:
    """ASE's format name for the input: guessed from the file's name and first bytes as ASE
    does for a path; a stream (``-``, a pipe) without a suffix is XYZ unless its bytes say
    otherwise."""
    from ase.io.formats import UnknownFileTypeError, filetype

    name = "" if path == STDIN else os.path.basename(path)
    head = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # a UTF-8 byte-order mark
    try:
        return filetype(_NamedBytes(head, name))
    except UnknownFileTypeError as err:
        if stream and "." not in name:
            return "extxyz"
        msg = _first_line(err)
        raise StructureError(
            f"could not read {label}: unknown structure file format ({msg}); use a format ASE "
            "reads, e.g. .xyz, .extxyz, .sdf, .pdb"
        ) from None


def _ase_frames(data: bytes, path: str, stream: bool, label: str, limits: Limits) -> list:
    """Every frame ASE reads from ``data`` (the bytes already read: a stream cannot be read
    again); the XYZ count lines are checked first."""
    import ase.io
    from ase.io.formats import get_compression, ioformats

    fmt = _structure_format(data, path, stream, label)
    ioformat = ioformats.get(fmt)
    compressed = get_compression(path)[1] is not None
    if not compressed:  # (a compressed file's count lines are not scanned)
        text = None
        if ioformat is None or not ioformat.isbinary:
            text = _decode(data, "structure file", label)
        if fmt in XYZ_FORMATS:
            _scan_xyz(text, label, limits)
        if ioformat is not None and ioformat.acceptsfd:
            fh = io.BytesIO(data) if ioformat.isbinary else io.StringIO(text, newline=None)
            return ase.io.read(fh, format=fmt, index=":")
    if not stream:  # a format ASE reads by name only (or compressed): the regular file
        return ase.io.read(path, format=fmt, index=":")
    suffix = "".join(Path(path).suffixes[-2:]) if path != STDIN else ".xyz"
    with tempfile.TemporaryDirectory(prefix="chemprune_input_") as tmp:
        copy = Path(tmp) / f"input{suffix}"
        copy.write_bytes(data)
        return ase.io.read(str(copy), format=fmt, index=":")


def read_structure_file(
    path: os.PathLike | str, *, limits: Limits = DEFAULT_LIMITS
) -> list[Structure]:
    """Read every frame of an ASE-readable structure file (xyz, extxyz, sdf, pdb, ...).

    ``path`` may be ``-`` (standard input), a pipe, a FIFO, process substitution or a ``/proc``
    file: it is read once, in chunks, and refused once larger than ``limits.max_file_bytes``.
    The format is ASE's guess from the file's name and contents; a stream with no suffix
    (``-``, ``/dev/stdin``, ``<(...)``) is read as XYZ.

    Structures are named ``"<file>"``, or ``"<file>#<k>"`` (``k`` from 1) when the file holds
    several frames (``<stdin>`` for ``-``). Periodic cells are ignored: the models are
    molecular. Every frame's geometry is checked (:func:`chemprune.molecules.chem.sanity.check_geometry`:
    atom count, coordinates float32 can hold, no coincident atoms); an XYZ file's count lines
    are checked before it is parsed.

    Args:
        path: the file, or ``-`` for standard input.
        limits: size and geometry limits.

    Returns:
        One :class:`Structure` per frame, ``source`` being the path (``<stdin>`` for ``-``).

    Raises:
        StructureError: missing, empty, too large, not UTF-8 or unreadable file (``"could not
            read <file>: <ASE's reason>"``), unknown format, a frame with no atoms or non-finite
            coordinates, or unsupported elements, too many atoms or frames, atoms closer than
            ``limits.min_distance``; frames are named as ``"<file> (frame k)"``.
    """
    from ase.io.formats import UnknownFileTypeError

    stream = is_stream(path)
    data, label = _read(path, "structure file", limits)
    try:
        frames = _ase_frames(data, os.fspath(path), stream, label, limits)
    except StructureError:
        raise
    except UnknownFileTypeError as err:
        msg = _first_line(err)
        if msg.lower().startswith("empty file"):
            raise StructureError(f"structure file {label} is empty") from None
        raise StructureError(
            f"could not read {label}: unknown structure file format ({msg}); use a format "
            "ASE reads, e.g. .xyz, .extxyz, .sdf, .pdb"
        ) from None
    except Exception as err:  # ASE parsers raise anything from ValueError to StopIteration
        raise StructureError(f"could not read {label}: {_first_line(err)}") from None
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise StructureError(f"structure file {label} contains no structures")
    if len(frames) > limits.max_molecules:
        raise StructureError(f"{label}: more than {limits.max_molecules:,} structures in one file")

    many = len(frames) > 1
    out: list[Structure] = []
    for k, atoms in enumerate(frames, start=1):
        where = f"{label} (frame {k})" if many else label
        z = np.asarray(atoms.numbers, dtype=np.int64)
        pos = np.asarray(atoms.positions, dtype=np.float64)
        if z.size == 0:
            raise StructureError(f"{where}: contains no atoms")
        check_elements(z, where)
        check_geometry(z, pos, where, limits)  # atom count, finite float32 coordinates, overlaps
        name = f"{label}#{k}" if many else label
        out.append(Structure(name=name, z=z, pos=pos.copy(), source=label))
    return out


def read_smiles_file(
    path: os.PathLike | str, *, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[str, str]]:
    """Read a file of ``SMILES [name]`` lines.

    ``path`` may be ``-`` (standard input), a pipe, a FIFO, process substitution or a ``/proc``
    file; it is read in chunks and refused once larger than ``limits.max_file_bytes``. UTF-8,
    with or without a byte-order mark. Blank lines and lines starting with ``#`` are skipped;
    the name is the rest of the line after the first whitespace, or ``"<file>:<lineno>"``
    (``<stdin>:<lineno>`` for ``-``) when absent.

    Args:
        path: the text file, or ``-`` for standard input.
        limits: ``max_file_bytes`` and ``max_molecules`` apply.

    Returns:
        ``(smiles, name)`` pairs in file order.

    Raises:
        StructureError: missing, empty, too large or undecodable file (the byte offset named),
            or one with no SMILES lines.
    """
    data, label = _read(path, "SMILES file", limits)
    text = _decode(data, "SMILES file", label)
    entries: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        name = parts[1].strip() if len(parts) > 1 else ""
        entries.append((parts[0], name or f"{label}:{lineno}"))
        if len(entries) > limits.max_molecules:
            raise StructureError(
                f"SMILES file {label}: more than {limits.max_molecules:,} SMILES in one file"
            )
    if not entries:
        raise StructureError(f"SMILES file {label} contains no SMILES (only blank or # lines)")
    return entries


def structures_to_batch(
    structures: Sequence[Structure],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate structures into ``(z, pos, batch)`` for :meth:`SchNet.forward`.

    Returns:
        ``z`` ``[N]`` long, ``pos`` ``[N, 3]`` float32, ``batch`` ``[N]`` long (molecule index).

    Raises:
        ValueError: ``structures`` is empty.
    """
    if len(structures) == 0:
        raise ValueError("no structures to batch")
    z = torch.from_numpy(np.concatenate([np.asarray(s.z, dtype=np.int64) for s in structures]))
    pos = torch.from_numpy(
        np.concatenate([np.asarray(s.pos, dtype=np.float64).reshape(-1, 3) for s in structures])
    ).to(torch.float32)
    counts = torch.tensor([len(s.z) for s in structures], dtype=torch.long)
    batch = torch.repeat_interleave(torch.arange(len(structures)), counts)
    return z, pos, batch
