import numpy as np
import pytest

from chemprune.molecules.data.splits import (
    load_or_create_split,
    make_split,
    standard_sizes,
    subset_sizes,
)


def test_standard_sizes_for_full_qm9():
    assert standard_sizes(130_831) == (110_000, 10_000, 10_831)
    with pytest.raises(ValueError):
        standard_sizes(1000)


def test_split_reproducible_disjoint_and_saved(tmp_path):
    a = make_split(1000, subset_sizes(500, 1000), seed=3)
    b = make_split(1000, subset_sizes(500, 1000), seed=3)
    c = make_split(1000, subset_sizes(500, 1000), seed=4)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    assert a.sizes == (400, 50, 50)
    assert len(set(a.train) | set(a.val) | set(a.test)) == 500
    s1, path = load_or_create_split(tmp_path, 1000, (800, 100, 100), seed=1)
    assert path.exists()
    # the saved file wins over regeneration: tamper with it and it is what comes back
    with np.load(path) as f:
        saved = {k: f[k] for k in f.files}
    saved["test"] = saved["test"][::-1].copy()
    np.savez(path, **saved)
    s2, _ = load_or_create_split(tmp_path, 1000, (800, 100, 100), seed=1)
    np.testing.assert_array_equal(s2.test, s1.test[::-1])


def test_bad_sizes():
    with pytest.raises(ValueError, match="--subset"):
        subset_sizes(5, 100)
    with pytest.raises(ValueError, match="do not fit"):
        make_split(10, (8, 2, 2), 0)
    with pytest.raises(ValueError, match="unknown split part"):
        make_split(10, (8, 1, 1), 0).part("dev")


def _t(values):
    import torch

    return torch.tensor(values, dtype=torch.int32)


def _seeded(**parts):
    record = {"seed": 0, "sizes": [6, 2, 2], "val": _t([1, 4]), "test": _t([0, 7])}
    return {**record, **parts}


@pytest.mark.parametrize(
    ("record", "what"),
    [
        (_seeded(val=_t([-3, 4])), "val holds the negative id -3"),
        (_seeded(test=_t([0, 7]).float()), "test ids are float32, not integers"),
        (_seeded(val=_t([1, 0]).bool()), "val ids are bool, not integers"),
        (_seeded(val=_t([]), sizes=[6, 0, 2]), "val is empty"),
        (_seeded(val=_t([4, 4])), "val repeats id 4"),
        (_seeded(test=_t([4, 7])), "id 4 is in both val and test"),
        (_seeded(val=[1, 4]), "val is a list, not a tensor of molecule ids"),
        (_seeded(val=_t([[1, 4]])), "val ids form a 2-D tensor, not a list"),
        (_seeded(sizes=[6, 3, 2]), "val has 2 ids, its recorded size is 3"),
        (_seeded(sizes=[6, 2]), "sizes is [6, 2], not three counts (train, val, test)"),
        (_seeded(seed=1.5), "seed is 1.5, not an integer >= 0"),
        ({"val": _t([1]), "test": _t([2])}, "a seeded split needs its seed and sizes"),
        (_seeded(kind="random"), "unknown kind 'random' (expected 'explicit' or none)"),
        ({"kind": "explicit", "val": _t([1]), "test": _t([2])}, "no train ids"),
        ([1, 2], "it is a list, not a mapping"),
    ],
)
def test_check_split_names_what_is_wrong(record, what):
    from chemprune.molecules.data.splits import InvalidSplit, check_split

    with pytest.raises(InvalidSplit) as err:
        check_split(record)
    assert err.value.what == what
    assert str(err.value) == f"the checkpoint has an invalid split: {what}"


def test_check_split_returns_int64_ids():
    from chemprune.molecules.data.splits import check_split

    parts = check_split(_seeded())
    assert {k: v.tolist() for k, v in parts.items()} == {"val": [1, 4], "test": [0, 7]}
    assert all(v.dtype == np.int64 for v in parts.values())
    explicit = {"kind": "explicit", "train": _t([3]), "val": _t([1]).long(), "test": _t([2])}
    assert sorted(check_split(explicit)) == ["test", "train", "val"]  # sizes optional there
