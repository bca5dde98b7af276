import numpy as np
import torch

from chemprune.molecules.data.batching import MoleculeSet, batch_indices


def test_collate_gathers_the_right_atoms(qm9_small):
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    b = ms.collate([5, 0, 17])
    assert b.num_molecules == 3
    for k, m in enumerate([5, 0, 17]):
        z, pos = qm9_small.molecule(m)
        sel = b.batch == k
        np.testing.assert_array_equal(b.z[sel].numpy(), z)
        np.testing.assert_allclose(b.pos[sel].numpy(), pos)
    assert torch.equal(b.y, ms.y[[5, 0, 17]])


def test_batch_order_fixed_by_seed():
    a = batch_indices(np.arange(100), 32, shuffle=True, seed=7)
    b = batch_indices(np.arange(100), 32, shuffle=True, seed=7)
    assert [len(x) for x in a] == [32, 32, 32, 4]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert sorted(torch.cat(a).tolist()) == list(range(100))
