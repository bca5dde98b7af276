"""Helpers shared by the CLI commands (data and split resolution)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from chemprune.data.qm9 import QM9Data, cache_dir, load_qm9
from chemprune.data.splits import Split, load_or_create_split, standard_sizes, subset_sizes

__all__ = ["load_dataset", "load_dataset_and_split"]


def load_dataset(data_dir: Path | None) -> tuple[QM9Data, str, Path]:
    """QM9 from qm9pack (default) or a folder of qm9pack-format CSVs; returns (data, source, splits folder)."""
    if data_dir is None:
        data = load_qm9()
        from importlib import metadata

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


def load_dataset_and_split(
    data_dir: Path | None, subset: int | None, seed: int
) -> tuple[QM9Data, Split, str]:
    data, source, folder = load_dataset(data_dir)
    if subset is not None:
        sizes = subset_sizes(subset, len(data))
    elif len(data) > 120_000:
        sizes = standard_sizes(len(data))
    else:
        sizes = subset_sizes(len(data), len(data))
    split, _ = load_or_create_split(folder, len(data), sizes, seed)
    return data, split, source
