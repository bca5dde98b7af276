"""Inference runtimes for a trained SchNet: eager PyTorch, a frozen TorchScript graph, or a
``torch.export`` program (:mod:`chemprune.export`).

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
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from chemprune.models.schnet import SchNet

__all__ = ["RUNTIMES", "compile_for_inference", "with_runtime"]

RUNTIMES = ("eager", "torchscript", "export")


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


def with_runtime(model: SchNet, runtime: str) -> nn.Module:
    """``model`` itself for ``eager``, its compiled copy for ``torchscript``, its
    ``torch.export`` program for ``export``."""
    if runtime == "eager":
        return model
    if runtime == "torchscript":
        return compile_for_inference(model)
    if runtime == "export":
        from chemprune.export import ExportedRuntime, export_program

        return ExportedRuntime(export_program(model).module(), max_z=model.max_z)
    raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
