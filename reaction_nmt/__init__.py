"""reaction_nmt: reactant SMILES to product SMILES as translation (OpenNMT-py backend).

So far: the Molecular Transformer SMILES tokenizer (:mod:`reaction_nmt.tokenize`).
"""

from reaction_nmt.tokenize import detokenize, tokenize

__all__ = ["tokenize", "detokenize"]
