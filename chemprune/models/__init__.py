"""Models: SchNet and its building blocks."""

from chemprune.models.graph import full_edge_index, radius_pairs
from chemprune.models.schnet import SchNet

__all__ = ["SchNet", "radius_pairs", "full_edge_index"]
