"""Packaging facts the Makefile and users rely on."""

import tomllib
import yaml

from tests.conftest import REPO


def test_environment_yml_lists_the_pyproject_dependencies():
    py = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = py["dependencies"] + py["optional-dependencies"]["interop"] + ["matplotlib", "pytest"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    flat = []
    for d in env["dependencies"]:
        flat += d["pip"] if isinstance(d, dict) else [d]
    names = {str(x).split("=")[0].split(">")[0].split("<")[0].strip().lower() for x in flat}
    missing = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps} - names
    assert not missing


def test_torch_is_pinned_by_constraints_and_data_folders_are_not_packages():
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()
    assert not (REPO / "datasets" / "__init__.py").exists()
    assert not (REPO / "models" / "__init__.py").exists()
    import torch

    assert torch.__version__.startswith("2.13.0")
