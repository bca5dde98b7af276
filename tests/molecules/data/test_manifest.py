"""The committed QM9 manifest matches the installed source files."""

import hashlib
import json

from tests.conftest import REPO


def test_installed_qm9pack_matches_manifest():
    from chemprune.molecules.data.qm9 import qm9pack_data_dir

    manifest = json.loads((REPO / "datasets" / "qm9" / "MANIFEST.json").read_text())
    folder = qm9pack_data_dir()
    for name, info in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == info["bytes"], name
        assert hashlib.sha256(data).hexdigest() == info["sha256"], name
    assert manifest["counts"]["molecules"] == 130_831
    assert sum(f["rows"] for n, f in manifest["files"].items() if "part" in n) == 130_831
