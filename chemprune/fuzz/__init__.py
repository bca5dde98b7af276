"""Fuzz oracles for the input surfaces of both CLIs: run one generated case, judge its outcome.

Each surface has a generator (a hypothesis strategy) and an oracle that runs one case (a SMILES
text, the bytes of a structure, corpus or model file, a command line) and returns an
:class:`~chemprune.fuzz.oracle.Outcome` (ok, refused, crash, wrong, hang, damaged; see
:mod:`chemprune.fuzz.oracle`):

* molecules (:mod:`chemprune.fuzz.molecules`): ``smiles``, ``xyz``, ``model``, ``split`` (split
  records inside checkpoints, with and without their digest); ``legacy_model``
  (:mod:`chemprune.fuzz.legacy`: schnetpack 0.x model files for ``chemprune import``);
* the command line (:mod:`chemprune.fuzz.options`): ``argv`` (through the parser the caller
  hands in: this package does not import the CLI it fuzzes);
* reactions (:mod:`chemprune.fuzz.reactions`): ``reaction`` (``reaction-nmt predict``'s input),
  ``corpus`` (CSV/TSV files for ``reaction-nmt prepare``), ``reaction_model`` (model files).

Used by ``tests/test_fuzz.py`` and ``tests/reaction_nmt/test_fuzz_reaction.py`` (a fast slice in
the default run, >= 10,000 cases per surface with ``-m slow``) and ``benchmarks/fuzz_report.py``.
"""

from __future__ import annotations

from chemprune.fuzz.legacy import legacy_model_case, legacy_model_reference
from chemprune.fuzz.molecules import (
    model_case,
    smiles_case,
    smiles_texts,
    split_case,
    split_records,
    xyz_case,
    xyz_contents,
)
from chemprune.fuzz.options import OPTION_CHECKS, argv_case, argv_cases
from chemprune.fuzz.oracle import KINDS, Outcome, mutate, mutations, time_limit
from chemprune.fuzz.reactions import (
    corpus_case,
    corpus_contents,
    reaction_case,
    reaction_model_case,
    reaction_model_reference,
    reaction_texts,
)

__all__ = [
    "KINDS",
    "OPTION_CHECKS",
    "Outcome",
    "SURFACES",
    "argv_case",
    "corpus_case",
    "legacy_model_case",
    "legacy_model_reference",
    "model_case",
    "mutate",
    "reaction_case",
    "reaction_model_case",
    "reaction_model_reference",
    "smiles_case",
    "split_case",
    "surface",
    "time_limit",
    "xyz_case",
]

# (reaction_model stays last: benchmarks/fuzz_report.py runs it apart)
SURFACES = (
    "smiles", "xyz", "model", "split", "legacy_model", "argv", "reaction", "corpus",
    "reaction_model",
)  # fmt: skip
# surfaces whose cases mutate a reference file handed in by the caller (legacy_model: its own)
_MUTATED = {
    "model": model_case, "reaction_model": reaction_model_case,
    "legacy_model": legacy_model_case,
}  # fmt: skip


def surface(name: str, *, model: tuple[bytes, dict] | None = None, parser=None):
    """``(strategy, judge)`` of one surface: hypothesis draws a case from ``strategy``,
    ``judge(case)`` returns its outcome. ``model`` is ``(file bytes, its weights)`` for the
    surfaces that mutate a model file (``model``: a chemprune checkpoint and its state_dict;
    ``reaction_model``: from :func:`reaction_model_reference`); ``parser`` is what builds the
    parser the ``argv`` surface parses with (:func:`chemprune.cli.build_parser`)."""
    if name == "legacy_model" and model is None:
        model = legacy_model_reference()
    if name == "argv" and parser is None:
        raise ValueError("the argv surface needs parser=chemprune.cli.build_parser")
    if name in _MUTATED:
        if model is None:
            raise ValueError(f"the {name} surface needs model=(file bytes, weights)")
        content, reference = model
        case = _MUTATED[name]
        return mutations(len(content)), lambda ops: case(mutate(content, ops), reference)
    table = {
        "smiles": (smiles_texts, smiles_case),
        "xyz": (xyz_contents, xyz_case),
        "split": (split_records, split_case),
        "argv": (argv_cases, lambda case: argv_case(*case, parser)),
        "reaction": (reaction_texts, reaction_case),
        "corpus": (corpus_contents, lambda case: corpus_case(*case)),
    }
    if name not in table:
        raise ValueError(f"unknown fuzz surface {name!r}; choose from {', '.join(SURFACES)}")
    strategy, judge = table[name]
    return strategy(), judge
