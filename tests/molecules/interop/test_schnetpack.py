"""schnetpack interop: same architecture, same graph, weights copied with identical outputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from chemprune.molecules.interop import schnetpack as spk_interop
from chemprune.molecules.models.schnet import SchNet

try:
    spk = spk_interop.import_schnetpack()
except ImportError:  # pragma: no cover - schnetpack is in the interop extra
    pytest.skip("schnetpack is not installed", allow_module_level=True)

COUNTS = [5, 9, 3, 18]


def _molecules(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = sum(COUNTS)
    z = torch.tensor([1, 6, 7, 8, 9])[torch.randint(0, 5, (n,), generator=g)]
    pos = torch.rand(n, 3, generator=g) * 4.0
    batch = torch.repeat_interleave(torch.arange(len(COUNTS)), torch.tensor(COUNTS))
    ptr = np.concatenate([[0], np.cumsum(COUNTS)])
    return z, pos, batch, ptr


def _small(**kw):
    torch.manual_seed(0)
    args = dict(n_atom_basis=16, n_interactions=2, n_rbf=10, cutoff=3.0, n_filters=12)
    args.update(kw)
    return spk_interop.make_schnetpack_schnet(**args)


def test_import_is_idempotent_and_patches_t_co():
    import torch.utils.data.dataloader as dl

    assert spk_interop.import_schnetpack() is spk
    assert hasattr(dl, "T_co")


def test_missing_schnetpack_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "schnetpack", None)
    with pytest.raises(ImportError, match="schnetpack is not installed"):
        spk_interop.import_schnetpack()


def test_same_parameter_count_as_chemprune():
    model = spk_interop.make_schnetpack_schnet()
    n = sum(p.numel() for p in model.parameters())
    assert n == sum(p.numel() for p in SchNet().parameters()) == 455_809


def test_inputs_match_schnetpacks_own_neighbour_lists():
    z, pos, batch, ptr = _molecules()
    ours = spk_interop.schnetpack_inputs(z, pos, batch, cutoff=3.0)
    assert torch.equal(ours[spk.properties.n_atoms], torch.tensor(COUNTS))
    want = sorted(zip(ours["_idx_i"].tolist(), ours["_idx_j"].tolist(), strict=True))
    for kind in ("matscipy", "ase"):
        data = spk_interop.SchnetpackMolecules(
            z.numpy(),
            pos.numpy(),
            ptr,
            np.arange(len(COUNTS), dtype=float),
            transforms=spk_interop.schnetpack_transforms(3.0, kind),
        )
        got = spk_interop.schnetpack_collate([data[i] for i in range(len(data))])
        assert got[spk.properties.R].dtype == torch.float32
        assert torch.equal(got[spk.properties.idx_m], batch)
        assert torch.equal(got["y"], torch.arange(len(COUNTS), dtype=torch.float32))
        edges = sorted(zip(got["_idx_i"].tolist(), got["_idx_j"].tolist(), strict=True))
        assert edges == want, kind
        assert not got[spk.properties.offsets].any()


@pytest.mark.parametrize("aggregation", ["sum", "avg"])
def test_from_schnetpack_identical_outputs(aggregation):
    model = _small(aggregation=aggregation)
    z, pos, batch, _ = _molecules(1)
    inputs = spk_interop.schnetpack_inputs(z, pos, batch, cutoff=3.0)
    net = spk_interop.from_schnetpack(model)
    assert net.filter_channels == [12, 12]
    assert net.readout == ("sum" if aggregation == "sum" else "mean")
    with torch.no_grad():
        want = model(inputs)["y"]
        got = net(z, pos, batch)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_from_schnetpack_full_size_identical_outputs():
    torch.manual_seed(0)
    model = spk_interop.make_schnetpack_schnet()
    z, pos, batch, _ = _molecules(2)
    with torch.no_grad():
        want = model(spk_interop.schnetpack_inputs(z, pos, batch))["y"]
        got = spk_interop.from_schnetpack(model)(z, pos, batch)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_from_schnetpack_rejects_silu_head():
    with pytest.raises(ValueError, match="activation"):
        spk_interop.from_schnetpack(_small(head_activation="silu"))


def test_from_schnetpack_rejects_other_models():
    with pytest.raises(TypeError):
        spk_interop.from_schnetpack(torch.nn.Linear(2, 2))
