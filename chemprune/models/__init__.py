"""Models: SchNet and its building blocks."""

from chemprune.models.graph import full_edge_index, radius_pairs
from chemprune.models.lenet import LeNet5Caffe, LeNet300100
from chemprune.models.schnet import SchNet

__all__ = ["SchNet", "LeNet300100", "LeNet5Caffe", "radius_pairs", "full_edge_index"]
