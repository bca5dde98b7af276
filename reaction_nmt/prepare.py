"""Forward-prediction corpora (reactants -> product) for OpenNMT-py from reaction records.

:func:`forward_example` turns one record into a canonical (source, target) pair: ``mixed``
sources join every reactant and reagent molecule; ``separated`` sources are
``reactants>reagents``, where reactants are the molecules that contribute atoms to the product
(by atom maps, or by the atoms named in the USPTO edit field when the product is unmapped).
Product molecules that also appear among the inputs are removed from the target.

:func:`prepare_corpora` writes ``src-{split}.txt``/``tgt-{split}.txt`` (tokenised),
``rejected-{split}.tsv`` (every line that was not used, with the reason) and ``manifest.json``
(counts, options and SHA-256 checksums of inputs and outputs).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reaction_nmt.chem import InvalidSmilesError, canonicalize, parse, randomize
from reaction_nmt.formats import Record, read_records
from reaction_nmt.spectators import SpectatorError, SpectatorPool, add_spectators, pool_from_sources
from reaction_nmt.tokenize import TokenizationError, tokenize

__all__ = [
    "MODES",
    "PrepareError",
    "RejectedReaction",
    "forward_example",
    "edit_atoms",
    "prepare_corpora",
    "read_spectator_pool",
    "sha256",
]

MODES = ("mixed", "separated")
MANIFEST = "manifest.json"


class PrepareError(ValueError):
    """Preparation cannot go on (bad options, or a split with no usable reaction)."""


class RejectedReaction(ValueError):
    """One reaction cannot be used; ``kind`` is a short category for the counts."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def edit_atoms(edits: str) -> set[int]:
    """Atom-map numbers named in a USPTO edit field.

    Accepts USPTO-15k's ``lostH;gainedH;deleted;added`` (``a-b-order`` bonds, ``,``-separated)
    and USPTO-MIT's ``a-b-order;a-b-order`` forms.
    """
    atoms: set[int] = set()
    for field in edits.replace(",", ";").split(";"):
        field = field.strip()
        if not field:
            continue
        pieces = field.split("-")
        ends = pieces[:2] if len(pieces) == 3 else pieces[:1] if len(pieces) == 1 else []
        for p in ends:
            if p.isdigit():
                atoms.add(int(p))
    return atoms


def _molecules(smiles: str, where: str) -> list[tuple[str, set[int]]]:
    """(canonical SMILES, atom-map numbers) of each '.'-separated molecule."""
    out = []
    for part in [p for p in smiles.split(".") if p]:
        try:
            mol = parse(part)
            maps = {a.GetAtomMapNum() for a in mol.GetAtoms() if a.GetAtomMapNum()}
            out.append((canonicalize(part), maps))
        except InvalidSmilesError as err:
            raise RejectedReaction("invalid_smiles", f"{where}: {err}") from None
    return out


def _join(mols: Iterable[str]) -> str:
    mols = list(mols)
    return canonicalize(".".join(mols)) if mols else ""


def forward_example(record: Record, *, mode: str = "mixed") -> tuple[str, str]:
    """Canonical (source, target) SMILES for one record; raises :class:`RejectedReaction`."""
    if mode not in MODES:
        raise PrepareError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if record.error:
        raise RejectedReaction("format", f"{record.where}: {record.error}")
    reactants = _molecules(record.reactants, record.where)
    reagents = _molecules(record.reagents, record.where)
    products = _molecules(record.products, record.where)
    inputs = {smi for smi, _ in reactants + reagents}
    kept = [smi for smi, _ in products if smi not in inputs]
    if not kept:
        raise RejectedReaction(
            "empty_product", f"{record.where}: every product molecule is also an input"
        )
    target = _join(kept)
    if mode == "mixed":
        return _join(smi for smi, _ in reactants + reagents), target

    product_maps = set().union(*(maps for _, maps in products))
    contributing = product_maps or edit_atoms(record.edits)
    if contributing:
        pool = reactants + reagents
        react = [smi for smi, maps in pool if maps & contributing]
        reag = [smi for smi, maps in pool if not maps & contributing]
    elif record.reagents:
        react, reag = [s for s, _ in reactants], [s for s, _ in reagents]
    else:
        raise RejectedReaction(
            "no_atom_maps",
            f"{record.where}: 'separated' needs atom maps (or a reagent field) to tell "
            "reactants from reagents",
        )
    if not react:
        raise RejectedReaction("no_reactant", f"{record.where}: no molecule maps to the product")
    return f"{_join(react)}>{_join(reag)}", target


def augment_source(source: str, *, rng: random.Random) -> str:
    """A random-SMILES rendering of a source (each side of '>' randomised separately)."""
    return ">".join(randomize(side, rng=rng) if side else "" for side in source.split(">"))


def read_spectator_pool(path: Path | str, *, fmt: str = "mapped") -> SpectatorPool:
    """The spectator sets of an atom-mapped reaction file (USPTO-15k or USPTO-MIT layout, plain
    or gzip): per reaction, the input molecules that contribute no atom to the product.

    Raises:
        reaction_nmt.formats.DataFormatError: a missing or unreadable file.
        reaction_nmt.spectators.SpectatorError: no reaction in it has a spectator.
    """
    sources = []
    for record in read_records(fmt, Path(path)):
        try:
            sources.append(forward_example(record, mode="separated")[0])
        except RejectedReaction:
            continue
    return pool_from_sources(sources, name=str(path))


def with_spectators(
    source: str, target: str, pool: SpectatorPool, copies: int, *, rng: random.Random
) -> list[str]:
    """``copies`` sources with a spectator set drawn from ``pool`` each (never one holding a
    molecule of ``target``): the first written canonically (as ``reaction-nmt predict`` writes
    a chemist's input), the others in random SMILES with the molecules shuffled."""
    avoid = target.split(".")
    return [
        add_spectators(source, pool.draw(rng, avoid=avoid), rng=rng if i else None)
        for i in range(copies)
    ]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_split(
    records: Iterable[Record],
    out: Path,
    split: str,
    *,
    mode: str,
    augment: int,
    seed: int,
    spectators: SpectatorPool | None = None,
    spectator_copies: int = 0,
) -> dict:
    rng = random.Random(f"{seed}-{split}")
    copies = spectator_copies if (spectators is not None and split == "train") else 0
    counts: Counter[str] = Counter()
    read = written = 0
    with (
        open(out / f"src-{split}.txt", "w") as src,
        open(out / f"tgt-{split}.txt", "w") as tgt,
        open(out / f"rejected-{split}.tsv", "w") as rej,
    ):
        rej.write("where\treason\tmessage\n")
        for record in records:
            read += 1
            try:
                source, target = forward_example(record, mode=mode)
                sources = [source]
                if split == "train":
                    sources += [augment_source(source, rng=rng) for _ in range(augment)]
                if copies:
                    sources += with_spectators(source, target, spectators, copies, rng=rng)
                lines = [(" ".join(tokenize(s)), " ".join(tokenize(target))) for s in sources]
            except (RejectedReaction, TokenizationError, InvalidSmilesError, SpectatorError) as err:
                kind = getattr(
                    err, "kind", "spectators" if isinstance(err, SpectatorError) else "tokenize"
                )
                counts[kind] += 1
                rej.write(f"{record.where}\t{kind}\t{str(err).replace(chr(9), ' ')}\n")
                continue
            for s, t in lines:
                src.write(s + "\n")
                tgt.write(t + "\n")
            written += 1
    return {
        "read": read,
        "written": written,
        "lines": written * (1 + (augment if split == "train" else 0) + copies),
        "rejected": sum(counts.values()),
        "rejected_by_reason": dict(sorted(counts.items())),
    }


def prepare_corpora(
    inputs: dict[str, Path],
    out: Path,
    *,
    fmt: str,
    mode: str = "mixed",
    augment: int = 0,
    seed: int = 0,
    csv_options: dict | None = None,
    spectators: SpectatorPool | None = None,
    spectator_copies: int = 0,
) -> dict:
    """Write the corpora of every split in ``inputs`` (split name -> file) to ``out``.

    With ``spectators``, every train reaction gets ``spectator_copies`` more sources, each with
    a spectator set drawn from the pool (:func:`with_spectators`); the other splits stay clean.

    Returns the manifest (also written to ``out/manifest.json``). Raises :class:`PrepareError`
    when a split yields no usable reaction, or when ``out`` already holds a corpus (nothing is
    mixed into it); a failed call removes the corpus files it wrote.
    """
    if mode not in MODES:
        raise PrepareError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if augment < 0:
        raise PrepareError(f"--augment must be >= 0, got {augment}")
    if spectator_copies < 0:
        raise PrepareError(f"--spectator-copies must be >= 0, got {spectator_copies}")
    if spectator_copies and spectators is None:
        raise PrepareError(
            "--spectator-copies needs --spectators (a file of atom-mapped reactions)"
        )
    out = Path(out)
    existing = _corpus_files(out)
    if existing:
        shown = ", ".join(p.name for p in existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise PrepareError(
            f"--out {out} already holds a corpus ({shown}); a second prepare would mix old and "
            "new files: choose a new folder or remove it"
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare_all(inputs, out, fmt=fmt, mode=mode, augment=augment, seed=seed,
                            csv_options=csv_options, spectators=spectators,
                            spectator_copies=spectator_copies)  # fmt: skip
    except BaseException:
        for f in _corpus_files(out):  # nothing half-written stays behind
            f.unlink(missing_ok=True)
        raise


def _corpus_files(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    names = [MANIFEST, "src-*.txt", "tgt-*.txt", "rejected-*.tsv"]
    return sorted({p for pattern in names for p in out.glob(pattern)})


def _prepare_all(
    inputs: dict[str, Path],
    out: Path,
    *,
    fmt: str,
    mode: str,
    augment: int,
    seed: int,
    csv_options: dict | None,
    spectators: SpectatorPool | None = None,
    spectator_copies: int = 0,
) -> dict:
    manifest: dict = {
        "format": fmt,
        "mode": mode,
        "direction": "forward",
        "augment": augment,
        "seed": seed,
        "inputs": {},
        "spectators": None
        if spectators is None
        else {"copies": spectator_copies, "pool": spectators.summary()},
        "splits": {},
        "files": {},
    }
    for split, path in inputs.items():
        path = Path(path)
        extra = dict(csv_options or {})
        if fmt == "csv" and extra.get("split_column"):
            extra["split"] = split
        records = read_records(fmt, path, **extra) if fmt == "csv" else read_records(fmt, path)
        stats = _prepare_split(
            records,
            out,
            split,
            mode=mode,
            augment=augment,
            seed=seed,
            spectators=spectators,
            spectator_copies=spectator_copies,
        )
        manifest["inputs"][split] = {"path": str(path), "sha256": sha256(path)}
        manifest["splits"][split] = stats
        if stats["written"] == 0:
            reasons = stats["rejected_by_reason"] or {"empty file": 0}
            raise PrepareError(
                f"{path}: no usable reaction in split {split!r} (read {stats['read']}; "
                f"rejected by reason: {reasons}; see {out / f'rejected-{split}.tsv'})"
            )
    for split in inputs:
        for f in (
            out / f"src-{split}.txt",
            out / f"tgt-{split}.txt",
            out / f"rejected-{split}.tsv",
        ):
            with open(f) as fh:
                lines = sum(1 for _ in fh)
            manifest["files"][f.name] = {"sha256": sha256(f), "lines": lines}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass(frozen=True)
class PreparedData:
    """A folder written by :func:`prepare_corpora`."""

    folder: Path

    @property
    def manifest(self) -> dict:
        path = self.folder / MANIFEST
        if not path.is_file():
            raise PrepareError(f"{self.folder} has no {MANIFEST}; run 'reaction-nmt prepare' first")
        return json.loads(path.read_text())

    def src(self, split: str) -> Path:
        return self._file(f"src-{split}.txt")

    def tgt(self, split: str) -> Path:
        return self._file(f"tgt-{split}.txt")

    def _file(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise PrepareError(f"{path} does not exist; run 'reaction-nmt prepare' first")
        return path
