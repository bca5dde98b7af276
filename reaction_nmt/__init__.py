"""reaction_nmt: reactant SMILES to product SMILES as translation (OpenNMT-py backend).

Modules, one idea each:

* :mod:`reaction_nmt.tokenize`: the Molecular Transformer SMILES tokenizer;
* :mod:`reaction_nmt.chem`: RDKit canonicalisation (stereo kept) and random SMILES;
* :mod:`reaction_nmt.formats`: readers for the USPTO formats and CSV files;
* :mod:`reaction_nmt.prepare`: forward-prediction corpora, rejected lines and a manifest;
* :mod:`reaction_nmt.download`: the public USPTO-MIT files;
* :mod:`reaction_nmt.synthetic`: template reactions for tests and demos;
* :mod:`reaction_nmt.presets`: model presets (``compact``, ``mt``, ``tiny``) as OpenNMT-py config;
* :mod:`reaction_nmt.backend`: the only module that imports OpenNMT-py;
* :mod:`reaction_nmt.scoring`, :mod:`reaction_nmt.predict`, :mod:`reaction_nmt.trainlog`:
  top-k scoring, user input/output of predictions, learning curves.

Importing the package loads only the tokenizer; RDKit, torch and OpenNMT-py load on use.
"""

from reaction_nmt.tokenize import detokenize, tokenize

__all__ = ["tokenize", "detokenize"]
