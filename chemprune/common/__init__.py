"""What both command lines (``chemprune``, ``reaction-nmt``) share: checked numeric option types
and the argument parser that uses them (:mod:`chemprune.common.options`), and how a failure is
reported, one line and an exit code (:mod:`chemprune.common.failures`).

It sits below both CLIs and imports no other part of chemprune, so ``reaction_nmt`` can use it
without depending on ``chemprune.cli`` (tests/test_layering.py checks the layers)."""
