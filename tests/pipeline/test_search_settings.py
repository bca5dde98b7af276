"""SearchSettings: the search's recipe, checked in one place (the CLI names its options)."""

from __future__ import annotations

import pytest

from chemprune.pipeline.search_settings import SearchSettings


def test_default_warmup_is_a_share_of_the_steps():
    assert SearchSettings(steps=10).warmup == 3
    assert SearchSettings(engine="darts", minutes=1.0).warmup == 0
    assert SearchSettings(steps=10, warmup_steps=0).warmup == 0


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "give steps or minutes (the search's budget)"),
        ({"minutes": 1.0}, "engine darts_minus decays its auxiliary skip over steps: give them"),
        ({"steps": 4, "warmup_steps": 4}, "warmup_steps 4 leaves none of the 4 steps to search"),
        ({"steps": 4, "candidates": ("cf8",)}, "at least two operations"),
        ({"steps": 4, "candidates": ("cf8", "conv3")}, "unknown candidate operation"),
        ({"steps": 4, "target_macs": 1.5}, "fraction of the teacher's MACs"),
        ({"steps": 4, "order": 3}, "order must be 1 or 2"),
        ({"steps": 4, "distill": "logits"}, "distill must be one of"),
        ({"steps": 4, "lr": 0.0}, "lr must be > 0"),
        ({"steps": 4, "filter_grid": 1}, "filter_grid is 0 (exact)"),
    ],
)
def test_check_names_the_field(fields, message):
    with pytest.raises(ValueError, match=None) as err:
        SearchSettings(**fields).check()
    assert message in str(err.value)


def test_check_says_fields_as_the_caller_names_them():
    with pytest.raises(ValueError) as err:
        SearchSettings(steps=5, warmup_steps=7).check(lambda f: "--" + f.replace("_", "-"))
    assert str(err.value) == "--warmup-steps 7 leaves none of the 5 --steps to search"


def test_a_good_recipe_passes():
    s = SearchSettings(steps=4, target_macs=0.5, filter_grid=64)
    assert s.check() is s
    assert s.to_dict()["candidates"] == list(s.candidates)
    assert s.replace(steps=8).steps == 8
