"""Reaction-class classification (the ten USPTO-50k classes): data, a convolutional classifier
over SMILES tokens (:mod:`.model`), its training and files (:mod:`.train`), and the difference
fingerprint baseline (:mod:`.fingerprint`)."""

from reaction_nmt.classify.data import (
    NUM_CLASSES,
    ClassifiedReaction,
    Vocabulary,
    reaction_tokens,
    read_csv_classes,
    read_liu_classes,
    read_split,
)
from reaction_nmt.classify.model import ReactionCNN

__all__ = [
    "NUM_CLASSES", "ClassifiedReaction", "Vocabulary", "reaction_tokens", "read_csv_classes",
    "read_liu_classes", "read_split", "ReactionCNN",
]  # fmt: skip
