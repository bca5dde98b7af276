"""Generation metrics on hand-made sets give the exact values."""

from __future__ import annotations

import math

import pytest

from chemprune.engines.gan.metrics import (
    PROTOCOL_SAMPLES,
    fcd,
    generation_metrics,
    generator_coverage,
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
    # of the 4 distinct valid molecules, CCN and benzene are new (each counted once)
    assert novelty(SAMPLES, TRAINING) == 2 / 4
    assert novelty(["CCN", "CCN", "CCN", "CCO"], TRAINING) == 1 / 2  # not 3 / 4
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


def test_protocol_on_a_hand_made_list():
    """Validity over all samples, uniqueness over the valid ones, novelty over the distinct
    valid ones; "" counts as invalid like None."""
    samples = ["C", "C", "", None, "CC", "N", "N", "CC", "O", None]
    m = generation_metrics(samples, training={"C", "O", "CCC"})
    assert m["samples"] == 10 and m["validity"] == 7 / 10
    assert m["uniqueness"] == 4 / 7  # C, CC, N, O
    assert m["novelty"] == 2 / 4  # CC and N
    assert "coverage" not in m and PROTOCOL_SAMPLES == 10_000


def test_generator_coverage():
    # generator 0 makes A, B and an invalid graph; generator 1 makes B, C, C
    samples = ["CCO", "CCN", None, "CCN", "CC=O", "CC=O"]
    which = [0, 0, 0, 1, 1, 1]
    cov = generator_coverage(samples, which)
    assert cov["union"] == 3
    g0, g1 = cov["generators"]
    assert (g0["generator"], g0["samples"], g0["valid"], g0["distinct"], g0["only"]) == (
        0,
        3,
        2,
        2,
        1,
    )
    assert (g1["generator"], g1["samples"], g1["valid"], g1["distinct"], g1["only"]) == (
        1,
        3,
        3,
        2,
        1,
    )
    # a generator with no sample still gets its row; one that copies all others owns nothing
    cov = generator_coverage(["C", "C", "N"], [0, 1, 1], num_generators=3)
    assert [r["distinct"] for r in cov["generators"]] == [1, 2, 0]
    assert [r["only"] for r in cov["generators"]] == [0, 1, 0] and cov["union"] == 2
    m = generation_metrics(samples, TRAINING, generators=which)
    assert m["coverage"] == generator_coverage(samples, which)
    with pytest.raises(ValueError, match="5 samples but 6"):
        generator_coverage(samples[:5], which)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        generator_coverage(["C"], [2], num_generators=2)
