import pytest

from tests.conftest import run_cli

TINY = [
    "--hidden",
    "16",
    "--filters",
    "16",
    "--interactions",
    "2",
    "--gaussians",
    "16",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="session")
def trained(qm9_dir, tmp_path_factory):
    """A tiny gap model trained through the CLI on the 240-molecule fixture."""
    out = tmp_path_factory.mktemp("cli") / "run"
    r = run_cli(
        "train",
        "--data-dir",
        str(qm9_dir),
        "--target",
        "gap",
        "--epochs",
        "3",
        "--out",
        str(out),
        *TINY,
    )
    assert r.returncode == 0, r.stderr
    assert "best validation MAE" in r.stdout and "epoch    3" in r.stdout
    return out / "best.pt"
