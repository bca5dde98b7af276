"""Generation metrics on hand-made sets give the exact values."""

from __future__ import annotations

import math

import pytest

from chemprune.engines.gan.metrics import (
    fcd,
    generation_metrics,
    internal_diversity,
    novelty,
    uniqueness,
    validity,
)

SAMPLES = ["CCO", "CCO", "CCN", None, "c1ccccc1", None, "CCO", "O"]
TRAINING = {"CCO", "O", "CCC"}


def test_hand_made_set():
    assert validity(SAMPLES) == 6 / 8
    assert uniqueness(SAMPLES) == 4 / 6  # CCO, CCN, benzene, water
    assert novelty(SAMPLES, TRAINING) == 2 / 6  # CCN and benzene are new
    assert validity([None, None]) == 0 and uniqueness([None]) == 0 and novelty([None], []) == 0
    with pytest.raises(ValueError, match="no samples"):
        validity([])


def test_internal_diversity():
    assert internal_diversity(["CCO"] * 5) == pytest.approx(0.0)  # a collapsed generator
    assert math.isnan(internal_diversity(["CCO", None]))
    # two molecules without a shared Morgan bit are at Tanimoto 0
    assert internal_diversity(["C#N", "FF"]) == pytest.approx(1.0)
    mixed = internal_diversity(["CCO", "CCO", "FF"])  # pairs: 1, 0, 0 similar
    assert mixed == pytest.approx(1 - 1 / 3)


def test_fcd_is_zero_for_a_set_against_itself_and_positive_otherwise():
    a = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCC", "OCC=O"]
    b = ["FC(F)F", "C#N", "C1CC1", "CO", "NC=O", "O=C=O"]
    assert abs(fcd(a, a)) < 1e-3
    assert fcd(a + [None], b) > 1.0
    assert math.isnan(fcd(["CCO", None], b))


def test_generation_metrics_bundle():
    m = generation_metrics(SAMPLES, TRAINING)
    assert m["validity"] == 0.75 and m["samples"] == 8 and "fcd" not in m
