"""The reusable engines, on plain ``torch.nn.Module``s: nothing here knows SchNet or molecules.

* ``prune`` - pruners, groups, masks, shrinking, low-rank factorization (``lowrank_layers``);
* ``distill`` - distillation losses, feature capture, teacher cache, the ``Distiller``;
* ``nas`` - DARTS supernets (``MixedOp``) and search engines;
* ``gan`` - MolGAN-style generator/critic, WGAN-GP engines, metrics, generator files;
* ``distributed`` - DDP context, communication hooks (TernGrad), SmoothOut, ``torchrun``;
* ``registry`` - the named-engine registry all of them use.

Engines import only engines and :mod:`chemprune.common` (tests/test_layering.py checks it); the
SchNet adapters live in :mod:`chemprune.molecules.schnet`.
"""
