"""Generator files: a trained graph generator with its critic, written atomically, loaded
weights-only and checked.

::

    {"format": "chemprune.generator", "format_version": 1, "chemprune_version": ...,
     "engine": "mgo_gan", "engine_options": {...},
     "config": {...GraphGenerator arguments, per-layer widths...}, "state_dict": {...},
     "critic_config": {...}, "critic_state_dict": {...},
     "data": {"source", "molecules", "split": {"seed", "test_fraction", "train", "test"}},
     "metrics": {...}, "compressed_from": {...},        # a compressed generator's parent
     "integrity": {"algorithm": "sha256", "digest": ...},
     "training": {...}}                                 # resumable state; only in last.pt

The digest covers both networks' configurations and weights (:func:`chemprune.common.atomic.
weights_digest`), so a damaged copy is refused with an error naming the file; a SchNet
checkpoint or any other file gets a one-line error saying what it is instead.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from chemprune import __version__
from chemprune.common.atomic import CheckpointError, check_finite, load_weights_file, weights_digest
from chemprune.engines.gan.models import GraphCritic, GraphGenerator

__all__ = ["FORMAT", "generator_checkpoint", "load_generator", "load_generator_file"]

FORMAT = "chemprune.generator"
FORMAT_VERSION = 1
_KIND = {"kind": "graph generator"}


def _digest(ckpt: dict[str, Any]) -> str:
    weights = {f"generator.{k}": v for k, v in ckpt["state_dict"].items()}
    weights.update({f"critic.{k}": v for k, v in ckpt["critic_state_dict"].items()})
    return weights_digest(
        weights, {"generator": ckpt["config"], "critic": ckpt["critic_config"]}, _KIND
    )


def generator_checkpoint(
    generator: GraphGenerator,
    critic: GraphCritic,
    *,
    engine: str,
    engine_options: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict to save for a trained generator and its critic."""

    def cpu(m: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}

    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "chemprune_version": __version__,
        "engine": engine,
        "engine_options": dict(engine_options or {}),
        "config": generator.config(),
        "state_dict": cpu(generator),
        "critic_config": critic.config(),
        "critic_state_dict": cpu(critic),
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
    }
    if extra:
        ckpt.update(extra)
    ckpt["integrity"] = {"algorithm": "sha256", "digest": _digest(ckpt)}
    return ckpt


def load_generator_file(path: os.PathLike | str) -> dict[str, Any]:
    """Load and validate a generator file (weights-only unpickling).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: an empty, truncated, corrupted or foreign file (a SchNet checkpoint
            included), or one from a newer chemprune.
    """
    obj = load_weights_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        what = "another kind of file"
        if isinstance(obj, dict) and obj.get("format") == "chemprune.schnet":
            what = "a chemprune SchNet checkpoint (a property model)"
        raise CheckpointError(
            f"model file {path} is {what}, not a chemprune graph generator "
            "(`chemprune generate train` makes one)"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"model file {path} has generator format version {version!r}; this chemprune "
            f"reads up to {FORMAT_VERSION}"
        )
    for key in ("config", "state_dict", "critic_config", "critic_state_dict"):
        if not isinstance(obj.get(key), dict):
            raise CheckpointError(f"model file {path} lacks its {key!r} section")
    for key in ("state_dict", "critic_state_dict"):
        bad = [k for k, v in obj[key].items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"model file {path}: {key} entry {bad[0]!r} is not a tensor")
    integrity = obj.get("integrity")
    if not isinstance(integrity, dict) or integrity.get("algorithm") != "sha256":
        raise CheckpointError(f"model file {path} has no readable integrity section")
    try:
        digest = _digest(obj)
    except (TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"model file {path} is corrupted: {err}") from None
    if digest != integrity.get("digest"):
        raise CheckpointError(
            f"model file {path} is corrupted: its weights or architecture do not match the "
            "checksum stored when it was written"
        )
    return obj


def load_generator(path: os.PathLike | str) -> tuple[GraphGenerator, GraphCritic, dict[str, Any]]:
    """``(generator in eval mode, critic, file contents)``."""
    ckpt = load_generator_file(path)
    try:
        gen = GraphGenerator.from_config(ckpt["config"])
        gen.load_state_dict(ckpt["state_dict"], strict=True)
        critic = GraphCritic.from_config(ckpt["critic_config"])
        critic.load_state_dict(ckpt["critic_state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        msg = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"model file {path}: architecture and weights disagree: {msg}"
        ) from None
    check_finite(ckpt["state_dict"], path)
    gen.eval()
    return gen, critic, ckpt
