"""Learning curves from an OpenNMT-py training log (``train.log`` of a run folder).

OpenNMT-py reports every ``report_every`` steps a line such as
``Step 50/ 800; acc: 62.5; ppl: 2.9; xent: 1.1; lr: 0.00225; sents: 1197; bsz: 1852/ 829/48;
3227/1445 tok/s; 23 sec;`` and after each validation ``Validation perplexity: X`` and
``Validation accuracy: Y``. Seconds count from the start of the training loop.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["read_train_log"]

_STEP = re.compile(
    r"Step\s+(\d+)/\s*\d+; acc:\s*([\d.]+); ppl:\s*([\d.]+);.*?"
    r"(\d+)/\s*(\d+) tok/s;\s*(\d+) sec"
)
_VALID = re.compile(r"Validation (perplexity|accuracy): ([\d.]+)")


def read_train_log(path: Path) -> dict[str, list[dict]]:
    """``{"train": [{step, seconds, acc, ppl, src_tok_s, tgt_tok_s}], "valid": [{step, seconds,
    accuracy, perplexity}]}``. A resumed run appends to the same log; its seconds restart."""
    train: list[dict] = []
    valid: list[dict] = []
    offset = last_seconds = 0.0
    for line in Path(path).read_text(errors="replace").splitlines():
        m = _STEP.search(line)
        if m:
            seconds = float(m.group(6))
            if train and seconds + offset < last_seconds:
                offset = last_seconds  # a resumed run restarts its clock
            last_seconds = seconds + offset
            train.append(
                {
                    "step": int(m.group(1)),
                    "seconds": last_seconds,
                    "acc": float(m.group(2)),
                    "ppl": float(m.group(3)),
                    "src_tok_s": int(m.group(4)),
                    "tgt_tok_s": int(m.group(5)),
                }
            )
            continue
        m = _VALID.search(line)
        if m and train:
            step = train[-1]["step"]
            if not valid or valid[-1]["step"] != step or m.group(1) in valid[-1]:
                valid.append({"step": step, "seconds": train[-1]["seconds"]})
            valid[-1][m.group(1)] = float(m.group(2))
    return {"train": train, "valid": valid}
