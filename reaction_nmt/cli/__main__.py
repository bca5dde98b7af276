"""``python -m reaction_nmt.cli``: the reaction-nmt command line."""

import sys

from reaction_nmt.cli import main

sys.exit(main())
