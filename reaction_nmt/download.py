"""Fetch the public USPTO-MIT files (Jin et al., NeurIPS 2017) when a user is online.

The canonical copy is ``USPTO/data.zip`` of wengong-jin/nips17-rexgen (MIT license), the one
the Molecular Transformer used: members ``data/{train,valid,test}.txt`` in the atom-mapped
``reactants>>product edits`` format that ``prepare --format mapped`` reads. Files already
present are not fetched again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from reaction_nmt.prepare import sha256

__all__ = ["USPTO_MIT_URL", "DownloadError", "download_uspto_mit"]

USPTO_MIT_URL = "https://github.com/wengong-jin/nips17-rexgen/raw/master/USPTO/data.zip"
SPLITS = ("train", "valid", "test")


class DownloadError(RuntimeError):
    """The archive could not be fetched or does not hold the expected files."""


def download_uspto_mit(out: Path, *, url: str = USPTO_MIT_URL, timeout: float = 60.0) -> dict:
    """Put ``train.txt``, ``valid.txt`` and ``test.txt`` of USPTO-MIT into ``out``.

    Returns ``{split: path}``; writes ``out/download.json`` with the URL and checksums.
    """
    out = Path(out)
    targets = {s: out / f"{s}.txt" for s in SPLITS}
    if all(p.is_file() for p in targets.values()):
        return targets
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        archive = Path(tmp) / "data.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (OSError, ValueError) as err:
            raise DownloadError(f"cannot download {url}: {err}") from None
        try:
            with zipfile.ZipFile(archive) as zf:
                members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
                missing = [f"{s}.txt" for s in SPLITS if f"{s}.txt" not in members]
                if missing:
                    raise DownloadError(f"{url} does not contain {', '.join(missing)}")
                for split, path in targets.items():
                    part = path.with_suffix(".part")
                    with zf.open(members[f"{split}.txt"]) as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.replace(part, path)
        except zipfile.BadZipFile:
            raise DownloadError(f"{url} is not a zip archive") from None
        record = {
            "url": url,
            "archive_sha256": sha256(archive),
            "files": {p.name: sha256(p) for p in targets.values()},
        }
    (out / "download.json").write_text(json.dumps(record, indent=2) + "\n")
    return targets
