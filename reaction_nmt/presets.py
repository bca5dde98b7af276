"""Named model presets and the OpenNMT-py training configuration built from them.

``mt`` is the Molecular Transformer (Schwaller et al. 2019: 4+4 layers, d=256, 8 heads,
FF 2048, ~12M parameters with a USPTO vocabulary). ``compact`` keeps a 4-layer encoder but
uses d=192, FF 512 and a 2-layer decoder (beam search runs the decoder once per token, so
decoder depth sets translation speed): about 2.4M parameters, under a quarter of ``mt``.
``tiny`` is for tests and the synthetic data set. Presets are plain dictionaries of OpenNMT-py
options (YAML keys equal its CLI flags); the user's overrides are applied on top.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import yaml

__all__ = [
    "PRESETS",
    "PresetError",
    "build_config",
    "write_vocab",
    "parse_overrides",
    "transformer_parameters",
]


class PresetError(ValueError):
    """Unknown preset or malformed override."""


_COMMON = {
    "encoder_type": "transformer",
    "decoder_type": "transformer",
    "position_encoding": True,
    "share_vocab": True,
    "share_embeddings": True,
    "optim": "adam",
    "adam_beta1": 0.9,
    "adam_beta2": 0.998,
    "decay_method": "noam",
    "learning_rate": 2.0,
    "max_grad_norm": 0.0,
    "label_smoothing": 0.0,
    "param_init": 0.0,
    "param_init_glorot": True,
    "normalization": "tokens",
    "batch_type": "tokens",
    "dropout": [0.1],
    "attention_dropout": [0.1],
    "self_attn_type": "scaled-dot",
    "seed": 42,
    "num_workers": 0,  # default workers stall ~15 s at start (ENVIRONMENT.md, trap 5)
    "keep_checkpoint": 10,
    "report_every": 100,
}

PRESETS: dict[str, dict] = {
    "mt": {
        **_COMMON,
        "enc_layers": 4,
        "dec_layers": 4,
        "heads": 8,
        "hidden_size": 256,
        "word_vec_size": 256,
        "transformer_ff": 2048,
        "batch_size": 4096,
        "valid_batch_size": 4096,
        "warmup_steps": 8000,
        "train_steps": 500000,
        "valid_steps": 5000,
        "save_checkpoint_steps": 5000,
    },
    "compact": {
        **_COMMON,
        "enc_layers": 4,
        "dec_layers": 2,
        "heads": 8,
        "hidden_size": 192,
        "word_vec_size": 192,
        "transformer_ff": 512,
        "batch_size": 4096,
        "valid_batch_size": 4096,
        "warmup_steps": 4000,
        "train_steps": 500000,
        "valid_steps": 5000,
        "save_checkpoint_steps": 5000,
    },
    "tiny": {
        **_COMMON,
        "enc_layers": 2,
        "dec_layers": 2,
        "heads": 4,
        "hidden_size": 128,
        "word_vec_size": 128,
        "transformer_ff": 256,
        "batch_size": 2048,
        "valid_batch_size": 2048,
        "warmup_steps": 100,
        "learning_rate": 0.5,
        "train_steps": 3000,
        "valid_steps": 500,
        "save_checkpoint_steps": 500,
        "report_every": 25,
    },
}


def transformer_parameters(config: dict, *, vocab_size: int) -> int:
    """Parameters of OpenNMT-py 3.5's transformer for ``config`` (no q/k/v or feed-forward
    biases, its defaults; embeddings shared between encoder and decoder, separate generator).
    Checked against the count of a real checkpoint in the tests."""
    d, ff = config["hidden_size"], config["transformer_ff"]
    enc = config["enc_layers"] * (4 * d * d + 2 * d * ff + 4 * d) + 2 * d
    dec = config["dec_layers"] * (8 * d * d + 2 * d * ff + 6 * d) + 2 * d
    embeddings = vocab_size * d * (1 if config.get("share_embeddings") else 2)
    return embeddings + enc + dec + d * vocab_size + vocab_size


def yaml_error_text(err: Exception) -> str:
    """PyYAML's multi-line parser message in one line: ``line 2, column 5: expected ',' or ']',
    but got ':' (while parsing a flow sequence from line 1, column 4)`` (1-based, like an
    editor's); the first line of anything else."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None:
            text += f" ({context} from line {start.line + 1}, column {start.column + 1})"
        elif context:
            text += f" ({context})"
        return text
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    if isinstance(getattr(err, "position", None), int):  # yaml.reader.ReaderError
        return f"character {err.position + 1}: {first}"
    return first


def parse_overrides(items: list[str]) -> dict:
    """``['-train_steps', '10', '-dropout', '[0.2]']`` (OpenNMT-py style pairs) or
    ``['train_steps=10']`` -> ``{'train_steps': 10, 'dropout': [0.2]}`` (values read as YAML)."""
    out: dict = {}
    i = 0
    while i < len(items):
        item = items[i]
        if "=" in item and not item.startswith("-"):
            key, value = item.split("=", 1)
            i += 1
        elif item.startswith("-") and i + 1 < len(items):
            key, value = item.lstrip("-"), items[i + 1]
            i += 2
        else:
            raise PresetError(f"cannot read override {item!r}: use '-option value' or option=value")
        try:
            out[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise PresetError(
                f"override {key}: value {value!r} is not valid YAML ({yaml_error_text(err)})"
            ) from None
    return out


def write_vocab(files: list[Path], out: Path) -> int:
    """Shared source/target vocabulary (``token count`` per line, most frequent first)."""
    counts: Counter[str] = Counter()
    for path in files:
        with open(path) as fh:
            for line in fh:
                counts.update(line.split())
    with open(out, "w") as fh:
        for token, n in counts.most_common():
            fh.write(f"{token} {n}\n")
    return len(counts)


def _count_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path) as fh:
        return sum(1 for _ in fh)


def build_config(
    *,
    preset: str,
    data_dir: Path,
    run_dir: Path,
    overrides: dict | None = None,
    train_from: Path | None = None,
) -> dict:
    """OpenNMT-py training options for ``preset`` on a prepared data folder."""
    if preset not in PRESETS:
        raise PresetError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    data_dir, run_dir = Path(data_dir).resolve(), Path(run_dir).resolve()
    config = copy.deepcopy(PRESETS[preset])
    config.update(
        {
            "data": {
                "corpus_1": {
                    "path_src": str(data_dir / "src-train.txt"),
                    "path_tgt": str(data_dir / "tgt-train.txt"),
                },
                "valid": {
                    "path_src": str(data_dir / "src-valid.txt"),
                    "path_tgt": str(data_dir / "tgt-valid.txt"),
                },
            },
            "src_vocab": str(run_dir / "vocab.txt"),
            "save_model": str(run_dir / "model"),
            "src_seq_length": 1000,
            "tgt_seq_length": 1000,
        }
    )
    if not (data_dir / "src-valid.txt").is_file():
        del config["data"]["valid"]
    # OpenNMT-py fills a bucket of `bucket_size` examples before batching, cycling through a
    # small corpus again and again to do so (minutes for a few hundred lines): cap it.
    train_lines = _count_lines(data_dir / "src-train.txt")
    config["bucket_size"] = max(256, min(config.get("bucket_size", 262144), train_lines))
    config.update(overrides or {})
    if train_from is not None:
        config["train_from"] = str(train_from)
    return config
