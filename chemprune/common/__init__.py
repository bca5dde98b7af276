"""What every layer and both command lines (``chemprune``, ``reaction-nmt``) share.

* ``options`` - checked numeric option types and the argument parser that uses them;
* ``failures`` - how a failure is reported, one line and an exit code;
* ``atomic`` - atomic file writes, weights-only loading, weight digests;
* ``runfolder`` - run-folder locks and outputs that cannot overwrite their inputs;
* ``progress`` - progress bars.

It is the bottom layer and imports no other part of chemprune, so ``reaction_nmt`` and the
engines can use it (tests/test_layering.py checks the layers)."""
