"""Chemistry input handling: SMILES and structure files to SchNet-ready structures."""

from chemprune.molecules.chem.structures import (
    Structure,
    StructureError,
    check_elements,
    read_smiles_file,
    read_structure_file,
    smiles_to_structure,
    structures_to_batch,
)

__all__ = [
    "Structure",
    "StructureError",
    "check_elements",
    "read_smiles_file",
    "read_structure_file",
    "smiles_to_structure",
    "structures_to_batch",
]
