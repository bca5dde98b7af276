"""Fixtures for compression tests: the tiny model of ``tiny_run`` loaded once for evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest


def valid_slice(data: Path, n: int = 16) -> tuple[list[str], list[str]]:
    from reaction_nmt.compress.evaluate import read_slice

    return read_slice(data / "src-valid.txt", n), read_slice(data / "tgt-valid.txt", n)


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path) -> Path:
    return tiny_run / "model_step_10.pt"


@pytest.fixture(scope="session")
def evaluator(tiny_model: Path, synthetic_data: Path):
    """Teacher-forced metrics of the tiny model on 16 validation reactions."""
    import torch

    from reaction_nmt.compress.evaluate import Evaluator

    torch.set_num_threads(1)
    src, tgt = valid_slice(synthetic_data)
    return Evaluator(tiny_model, src, tgt, metric="ppl", batch_size=16, max_length=40)
