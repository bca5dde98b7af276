"""``prune_schnet``: budgets in steps, structured removal, the report."""

from __future__ import annotations

import pytest
import torch

from chemprune.molecules.data.batching import MoleculeSet
from chemprune.molecules.data.splits import make_split
from chemprune.molecules.models.schnet import SchNet
from chemprune.pipeline.compress_schnet import prune_schnet
from chemprune.pipeline.prune_settings import PruneSettings


@pytest.fixture
def setup(qm9_small):
    data = MoleculeSet(qm9_small.z, qm9_small.pos, qm9_small.ptr, qm9_small.target_values("gap"))
    split = make_split(len(data), (160, 40, 40), seed=0)
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, filter_channels=8, num_interactions=2, num_gaussians=10)
    return model, data, split


def _steps(report: dict) -> int:
    return sum(part["steps"] for part in report["finetune"].values() if isinstance(part, dict))


@pytest.mark.parametrize("method", ["magnitude", "attention"])
def test_step_budget_is_the_same_for_every_engine(setup, method):
    model, data, split = setup
    report = prune_schnet(
        model,
        data,
        split,
        PruneSettings(
            method=method,
            sparsity=0.5,
            kind="filter",
            finetune_minutes=30,
            finetune_steps=7,
            batch_size=16,
        ),
        progress=False,
        log=lambda m: None,
    )
    assert _steps(report) == 7
    if method == "attention":  # half of the budget trains the gates
        assert report["finetune"]["gated"]["steps"] == 3
    assert model.filter_channels == [4, 4]
    assert report["after"]["params"] < report["before"]["params"]


def test_moving_molecules_to_their_own_device_is_free(setup):
    _, data, _ = setup
    assert data.to("cpu") is data and data.to(torch.device("cpu")).device.type == "cpu"


def test_kernel_sparsity_that_empties_a_part_is_refused(setup):
    model, data, split = setup
    model.interactions[0].filter_network.lin1 = torch.nn.Linear(10, 2)  # 2 hidden units only
    model.interactions[0].filter_network.lin2 = torch.nn.Linear(2, 8)
    with pytest.raises(ValueError, match="interactions.0.filter_hidden with no channel"):
        prune_schnet(
            model,
            data,
            split,
            PruneSettings(method="magnitude", sparsity=0.75, kind="kernel"),
            progress=False,
            log=lambda m: None,
        )


@pytest.mark.parametrize("distill", ["output", "features"])
def test_distilled_pruning_records_the_teacher_and_keeps_the_budget(setup, distill):
    model, data, split = setup
    report = prune_schnet(
        model,
        data,
        split,
        PruneSettings(
            method="attention",
            sparsity=0.5,
            kind="kernel",
            finetune_minutes=30,
            finetune_steps=6,
            batch_size=16,
            distill=distill,
            lr=1e-3,
            lr_schedule="cosine",
        ),
        progress=False,
        log=lambda m: None,
    )
    assert _steps(report) == 6
    assert report["distill"]["mode"] == distill
    assert report["finetune"]["masked"]["distill"]["mode"] == distill
    assert report["finetune"]["masked"]["mean_kd_output"] > 0
    assert (report["finetune"]["masked"]["mean_kd_features"] > 0) == (distill == "features")
    assert model.filter_channels == [4, 4]
    assert model.config()["filter_hidden_channels"] == [4, 4]


def test_target_macs_splits_the_kernel_budget_between_both_parts(setup):
    from chemprune.engines.prune import summarize
    from chemprune.molecules.schnet.prune_groups import schnet_groups
    from chemprune.pipeline.compress_schnet import shrunk_config, sparsity_for_macs

    model, data, _ = setup
    b = data.collate(list(range(32)))

    def macs(m):
        return summarize(m.eval(), lambda net: net(b.z, b.pos, b.batch))["macs"]

    s = sparsity_for_macs(model, b, 0.7, kind="kernel")
    cfg = shrunk_config(model, schnet_groups(model, "kernel"), s)
    assert cfg["filter_channels"] == cfg["filter_hidden_channels"]  # one sparsity for both
    assert cfg["filter_channels"][0] < 8
    assert macs(SchNet.from_config(cfg)) <= 0.7 * macs(model)


def test_gradual_magnitude_removal_ramps_then_fine_tunes(setup):
    model, data, split = setup
    report = prune_schnet(
        model,
        data,
        split,
        PruneSettings(
            method="magnitude",
            sparsity=0.5,
            kind="kernel",
            gradual=True,
            finetune_minutes=30,
            finetune_steps=8,
            batch_size=16,
        ),
        progress=False,
        log=lambda m: None,
    )
    assert report["finetune"]["gradual"]["steps"] == 4 and _steps(report) == 8
    assert report["gradual"] is True and model.filter_channels == [4, 4]
    with pytest.raises(ValueError, match="needs a step budget"):
        prune_schnet(
            model,
            data,
            split,
            PruneSettings(method="magnitude", sparsity=0.5, kind="kernel", gradual=True),
            progress=False,
            log=lambda m: None,
        )
    with pytest.raises(ValueError, match="not attention"):
        prune_schnet(
            model,
            data,
            split,
            PruneSettings(
                method="attention", sparsity=0.5, kind="kernel", gradual=True, finetune_steps=4
            ),
            progress=False,
            log=lambda m: None,
        )


@pytest.mark.parametrize("method", ["magnitude", "attention"])
def test_refit_starts_the_fine_tuning_from_the_least_squares_layers(setup, method):
    model, data, split = setup
    report = prune_schnet(
        model,
        data,
        split,
        PruneSettings(
            method=method,
            sparsity=0.5,
            kind="filter",
            refit=("f2out", "out"),
            refit_molecules=64,
            finetune_minutes=30,
            finetune_steps=6,
            batch_size=16,
        ),
        progress=False,
        log=lambda m: None,
    )
    refit = report["refit"]
    assert refit["molecules"] == 64  # two layers of each of the two blocks, in order:
    assert refit["layers"] == [f"interactions.{b}.{n}" for b in (0, 1) for n in ("f2out", "out")]
    assert all(
        a <= b for a, b in zip(refit["residual_after"], refit["residual_before"], strict=True)
    )
    assert _steps(report) == 6 and model.filter_channels == [4, 4]
    with pytest.raises(ValueError, match="refit layers must be among"):
        prune_schnet(
            model,
            data,
            split,
            PruneSettings(method="magnitude", sparsity=0.5, kind="filter", refit=("in2f",)),
            progress=False,
            log=lambda m: None,
        )


@pytest.mark.parametrize("function", ["snr", "pdiv(square(sub(mu_in, mu_out)), add(w_l2, var_in))"])
def test_cdc_prunes_schnet_kernels_from_target_bins(setup, function):
    from chemprune.engines.prune.evolve import resolve_function

    model, data, split = setup
    report = prune_schnet(model, data, split, PruneSettings(method="cdc", sparsity=0.5, kind="kernel", finetune_steps=3, finetune_minutes=30, batch_size=16, engine_options={"function": resolve_function(function), "target_bins": 4,
                        "observe_molecules": 64}), progress=False, log=lambda m: None)  # fmt: skip
    assert model.filter_channels == [4, 4]
    assert _steps(report) == 3 and report["after"]["params"] < report["before"]["params"]


def test_cdc_on_weights_is_refused(setup):
    model, data, split = setup
    with pytest.raises(ValueError, match="weight group"):
        prune_schnet(
            model,
            data,
            split,
            PruneSettings(method="cdc", sparsity=0.5, kind="weight"),
            progress=False,
            log=lambda m: None,
        )
