import sys

from chemprune.cli import main

sys.exit(main())
