"""Checked option types: ranges, NaN and inf refused, strict JSON lines."""

from __future__ import annotations

import argparse
import json

import pytest

from chemprune.common.options import (
    fraction,
    integer,
    json_line,
    nonneg_float,
    number,
    open_fraction,
    positive_int,
    seed_int,
)


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (positive_int, {"1": 1, " 7 ": 7}, ["0", "-2", "1.5", "x", ""]),
        (seed_int, {"0": 0, "4294967295": 2**32 - 1}, ["-1", "4294967296"]),
        (nonneg_float, {"0": 0.0, "1e-6": 1e-6}, ["-1e-9", "nan", "inf", "-inf", "x"]),
        (open_fraction, {"0.5": 0.5}, ["0", "1", "nan"]),
        (fraction, {"0": 0.0, "1": 1.0}, ["1.0001", "-0.0001"]),
        (integer(high=3), {"-5": -5, "3": 3}, ["4"]),
        (number(low=1, high=2, high_open=True), {"1": 1.0}, ["2", "0.99"]),
    ],
)
def test_option_types(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {text!r}"):
            parse(text)


def test_json_line_never_writes_nan():
    line = json_line({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})
    assert json.loads(line) == {"a": None, "b": [1.0, None], "c": "x"}
    assert "NaN" not in line and "Infinity" not in line


def test_an_option_without_its_value_is_refused():
    from chemprune.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["train", "--out", "r", "--lr=--"])  # argparse 3.11: lr = []
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--model=--"])
