"""Compression of OpenNMT-py reaction models (issue 6).

One idea per module:

* :mod:`.groups`: weight groups of a transformer (type and layer tags) and grouping strategies
  (global, layer, type, layer x type, per matrix, custom glob spec);
* :mod:`.evaluate`: validation metrics of masked in-memory models (greedy top-1, teacher-forced
  sequence match, perplexity) through the backend's translator;
* :mod:`.olmp`: OLMP thresholds per set under a metric constraint, with masked retraining
  (:mod:`.retrain`: OpenNMT-py's own trainer with a re-masking hook);
* :mod:`.structured`: attention heads and feed-forward units removed for real;
* :mod:`.storage`: sparse files (indices + values, optional int8);
* :mod:`.hooks`: masked retraining in OpenNMT-py's trainer (building shrunk models and reading
  sparse files is :mod:`reaction_nmt.modelfile`'s, below the backend and this package);
* :mod:`.checkpoint`: in-memory model <-> checkpoint dict.

Importing this package does not import OpenNMT-py; :mod:`.hooks`, :mod:`.evaluate` and
:mod:`.retrain` do on use.
"""

from reaction_nmt.compress.errors import CompressError
from reaction_nmt.compress.groups import STRATEGIES, TYPES, partition, read_spec, transformer_groups

__all__ = ["CompressError", "STRATEGIES", "TYPES", "partition", "read_spec", "transformer_groups"]
