"""Deploying a trained SchNet, on top of the molecules layer.

* ``tabulate`` - tabulated filters checked against the network (``tabulate_and_check``);
* ``export`` - ``torch.export`` programs; ``runtime`` - compiled inference, example inputs;
* ``ase`` - an ASE calculator over a checkpoint.

Imports molecules, engines and :mod:`chemprune.common` only (tests/test_layering.py).
"""
