"""Inference runtimes for a trained SchNet: eager PyTorch, a frozen TorchScript graph, or a
``torch.export`` program (built here; :mod:`chemprune.deploy.export` checks either graph against the
eager model and writes it to a file).

``torchscript`` scripts the model, freezes it (weights become constants, attribute look-ups
and the Python dispatch of every submodule disappear) and applies
``torch.jit.optimize_for_inference``. Its outputs equal eager's, gradients with respect to the
positions (forces) included; on this project's 2-core CPU it runs a QM9 molecule at batch 1
1.6-1.8x faster than eager on one thread or under OpenMP's default wait policy (1.1x on two
threads under ``OMP_WAIT_POLICY=PASSIVE``, where waking the second thread dominates), and is the
format ``chemprune export`` writes (``benchmarks/inference_runtime.py`` and
``benchmarks/compare_models.py`` measure it). TorchScript is
deprecated in torch 2.13; ``torch.export`` is its successor: ``export`` runs the program that
``chemprune export`` now writes by default (same values and forces; its radius graph is
``O(N^2)`` in the batch's atoms).

``compiled`` runs the model's per-atom part (filters, convolutions, atom-wise layers, head)
through ``torch.compile`` (Inductor, dynamic shapes) and keeps the radius graph and the
per-molecule sum in eager PyTorch (Inductor's CPU code for that last scatter fails, see
``ENVIRONMENT.md``). Inductor fuses a tabulated block's interpolation, product and scatter into
one loop: on 128/6 SchNet with tabulated filters it ran ~2.5x faster than tabulated eager at
batch 64 (``benchmarks/tabulated_speed.py``). It needs a C++ compiler, and the first call of each
process compiles for ~10 s (Inductor's cache on disk shortens later starts): meant for
screening many molecules, not for a single prediction.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from chemprune.molecules.models.graph import dense_radius_pairs, radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = [
    "RUNTIMES",
    "CompiledRuntime",
    "ExportableSchNet",
    "ExportedRuntime",
    "compile_for_inference",
    "example_molecules",
    "export_program",
    "with_runtime",
]

RUNTIMES = ("eager", "torchscript", "export", "compiled")


def compile_for_inference(model: SchNet) -> torch.jit.ScriptModule:
    """A frozen, inference-optimised TorchScript copy of ``model`` (which is left unchanged)."""
    was = model.training
    model.eval()
    try:
        with warnings.catch_warnings():  # the deprecation is known and stated above
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
            scripted = torch.jit.script(model)
            return torch.jit.optimize_for_inference(torch.jit.freeze(scripted))
    finally:
        model.train(was)


class CompiledRuntime(nn.Module):
    """``model`` with its per-atom outputs computed by a ``torch.compile`` d function; called
    like :class:`SchNet` (same input checks, values and forces)."""

    def __init__(self, model: SchNet) -> None:
        super().__init__()
        self.model = model.eval()
        self.cutoff = model.cutoff
        self._atoms = torch.compile(self._atom_outputs, dynamic=True)

    def _atom_outputs(self, z: Tensor, pos: Tensor, batch: Tensor, pairs: Tensor) -> Tensor:
        m = self.model
        return m.atom_outputs(m.atom_features(z, pos, batch, pairs), z)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        pairs: Tensor | None = None,
        num_molecules: int | None = None,
    ) -> Tensor:
        m = self.model
        batch = m.check_inputs(z, pos, batch)
        if pairs is None:
            pairs = radius_pairs(pos, batch, self.cutoff)
        if z.numel() == 0 or pairs.size(1) == 0:  # nothing worth compiling for
            return m(z, pos, batch, pairs, num_molecules)
        return m.read_out(self._atoms(z, pos, batch, pairs), batch, num_molecules)


class ExportableSchNet(nn.Module):
    """``model``'s forward with no data-dependent Python: what ``torch.export`` traces.

    Inputs are not validated here (atomic numbers outside the embedding fail in it); the
    molecule count is ``batch.max() + 1``.
    """

    def __init__(self, model: SchNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        m = self.model
        pairs = dense_radius_pairs(pos, batch, m.cutoff)
        y = m.atom_outputs(m.atom_features(z, pos, batch, pairs), z)
        n = batch.max().item() + 1
        torch._check(n >= 1)
        out = y.new_zeros(n).index_add(0, batch, y)
        if m.readout == "mean":
            counts = y.new_zeros(n).index_add(0, batch, torch.ones_like(y))
            out = out / counts.clamp_min(1.0)
        return out


class ExportedRuntime(nn.Module):
    """An exported program called like :class:`SchNet` (``num_molecules`` is implied by
    ``batch``; precomputed ``pairs`` are not taken), with SchNet's input checks in Python."""

    def __init__(self, program: nn.Module, *, max_z: int) -> None:
        super().__init__()
        self.program = program
        self.max_z = int(max_z)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        pairs: Tensor | None = None,
        num_molecules: int | None = None,
    ) -> Tensor:
        if pairs is not None:
            raise ValueError("the export runtime computes its own pairs")
        if batch is None:
            batch = torch.zeros_like(z)
        if z.numel() == 0:
            return pos.new_zeros(0 if num_molecules is None else num_molecules)
        if int(z.min()) < 1 or int(z.max()) >= self.max_z:
            raise ValueError(f"atomic numbers must be in [1, {self.max_z - 1}]")
        out = self.program(z, pos, batch)
        if num_molecules is not None and num_molecules != out.numel():
            raise ValueError(f"batch holds {out.numel()} molecules, not {num_molecules}")
        return out


def example_molecules() -> list[tuple[Tensor, Tensor, Tensor]]:
    """Small fixed molecules (ethanol, water + methane, one carbon) for tracing and checks."""
    g = torch.Generator().manual_seed(0)
    ethanol = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])
    two = torch.tensor([8, 1, 1, 6, 1, 1, 1, 1])
    out = []
    for z, batch in (
        (ethanol, torch.zeros(9, dtype=torch.long)),
        (two, torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])),
        (torch.tensor([6]), torch.zeros(1, dtype=torch.long)),
    ):
        pos = torch.randn(len(z), 3, generator=g) * 1.1
        out.append((z, pos, batch))
    return out


def export_program(model: SchNet) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (eval mode) with a dynamic number of atoms."""
    model.eval()
    z, pos, batch = example_molecules()[0]
    atoms = torch.export.Dim("atoms", min=1, max=1_000_000)
    return torch.export.export(
        ExportableSchNet(model),
        (z, pos, batch),
        dynamic_shapes={"z": {0: atoms}, "pos": {0: atoms}, "batch": {0: atoms}},
        strict=False,
    )


def with_runtime(model: SchNet, runtime: str) -> nn.Module:
    """``model`` itself for ``eager``, its compiled copy for ``torchscript``, its
    ``torch.export`` program for ``export``, a ``torch.compile`` d wrapper for ``compiled``."""
    if runtime == "eager":
        return model
    if runtime == "torchscript":
        return compile_for_inference(model)
    if runtime == "export":
        return ExportedRuntime(export_program(model).module(), max_z=model.max_z)
    if runtime == "compiled":
        return CompiledRuntime(model)
    raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
