"""reaction_nmt: reactant SMILES to product SMILES."""
