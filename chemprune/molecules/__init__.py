"""Molecules and the SchNet model, on top of the engines.

* ``data`` - QM9, targets, splits, batching; ``chem`` - SMILES and structure inputs, sanity;
* ``models`` - SchNet, its blocks, tabulated filters; ``predict`` - predictions and speed;
* ``schnet`` - the engines' SchNet adapters (pruning groups, statistics, refit, distillation,
  architecture search);
* ``interop`` - PyG and schnetpack models in and out; ``checkpoint`` - SchNet checkpoint files.

Imports engines, :mod:`chemprune.common` and itself only (tests/test_layering.py).
"""
