import numpy as np
import pytest

from chemprune.data.splits import load_or_create_split, make_split, standard_sizes, subset_sizes


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
