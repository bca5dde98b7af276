"""Tiny graph GANs and real-looking batches for the engine tests."""

from __future__ import annotations

import numpy as np
import torch

from chemprune.engines.gan import GraphCritic, GraphGenerator, one_hot_graphs
from chemprune.molecules.chem.molgraph import encode

SMILES = ["CCO", "CC#N", "c1ccoc1", "CC(=O)N", "OCC(F)F", "CN1CC1", "C1=CCC1", "NC=O"]


def tiny_generator(k: int = 3, seed: int = 0) -> GraphGenerator:
    torch.manual_seed(seed)
    return GraphGenerator(num_generators=k, z_dim=8, hidden=(16, 24, 32))


def tiny_critic(k: int = 3, seed: int = 1) -> GraphCritic:
    torch.manual_seed(seed)
    return GraphCritic(conv=(16, 8), aggregate=16, mlp=(16, 8), num_generators=k)


def real_batch(offset: int = 0, size: int = 8):
    pairs = [encode(SMILES[(offset + i) % len(SMILES)]) for i in range(size)]
    atoms = torch.from_numpy(np.stack([p[0] for p in pairs]))
    bonds = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return one_hot_graphs(atoms, bonds, 5, 4)
