"""The benchmark scripts (not part of the installed package).

They are run as ``.venv/bin/python benchmarks/X.py``: Python then puts this folder first on
``sys.path``, and the scripts import their siblings by plain name (``from harness import
RowStore``, ``from qm9_prune import measure_speed``). Imported as a package instead
(``python -m benchmarks.X``, ``import benchmarks.harness`` in the tests) this folder is put
first on ``sys.path`` here, once, so the same imports work; no script touches ``sys.path``.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
