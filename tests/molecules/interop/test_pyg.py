"""PyG SchNet weights load into chemprune's SchNet with identical outputs."""

import pytest
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.interop.pyg import from_pyg, make_pyg_schnet


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_channels=32, num_filters=16, num_interactions=3, num_gaussians=20, cutoff=5.0),
        dict(
            hidden_channels=16,
            num_filters=24,
            num_interactions=2,
            num_gaussians=12,
            cutoff=3.5,
            readout="mean",
            mean=1.25,
            std=0.75,
            atomref=torch.randn(100, 1),
        ),
    ],
)
def test_pyg_import_exact(qm9_small, kwargs):
    torch.manual_seed(0)
    ref = make_pyg_schnet(**kwargs).eval()
    with torch.no_grad():  # non-zero biases so every parameter matters
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model = from_pyg(ref).eval()
    ms = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr)
    b = ms.collate(list(range(64)))
    want = ref(b.z, b.pos, b.batch).view(-1)
    got = model(b.z, b.pos, b.batch)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in model.parameters()) <= sum(p.numel() for p in ref.parameters())


def test_not_a_pyg_schnet():
    with pytest.raises(TypeError, match="expected a torch_geometric SchNet"):
        from_pyg(torch.nn.Linear(2, 2))
