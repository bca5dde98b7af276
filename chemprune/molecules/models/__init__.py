"""Models: SchNet and its building blocks.

* ``schnet`` - the model; ``blocks`` - its embedding, interaction and readout blocks;
* ``radial`` - radial basis, cosine cutoff, shifted softplus; ``graph`` - neighbour pairs;
* ``tabulated`` - filters read from a table instead of the filter network.
"""

from chemprune.molecules.models.graph import full_edge_index, radius_pairs
from chemprune.molecules.models.schnet import SchNet

__all__ = ["SchNet", "radius_pairs", "full_edge_index"]
