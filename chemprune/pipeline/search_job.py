"""An architecture search run: the job around a
:class:`~chemprune.pipeline.search_settings.SearchSettings` (:class:`SearchJob`: which teacher,
its data, where the architecture goes), run by :func:`run_search_job`. ``chemprune search``
builds both from its options and calls :func:`run_search_job` once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chemprune.pipeline.search_settings import SearchSettings

__all__ = ["SearchJob", "run_search_job"]


@dataclass(frozen=True)
class SearchJob:
    """One ``chemprune search`` run around a :class:`SearchSettings`.

    Args:
        teacher: the trained checkpoint that guides the search (its training split is searched
            on).
        out: where the architecture JSON is written (atomically;
            :func:`~chemprune.pipeline.search_schnet.arch_record`).
        data_dir: the qm9-format CSVs the teacher was trained on (default: qm9pack).
    """

    teacher: Path
    out: Path
    data_dir: Path | None = None


def run_search_job(
    job: SearchJob,
    settings: SearchSettings,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load ``job.teacher`` with its data and split, search by ``settings``, and write the derived
    architecture to ``job.out``; returns the search's report. When no architecture could be
    derived (``report["derived"]["error"]``) nothing is written."""
    from chemprune.common.atomic import atomic_write_text
    from chemprune.pipeline.search_schnet import arch_record, search_schnet
    from chemprune.pipeline.trained import load_trained

    settings.check()
    trained = load_trained(job.teacher, job.data_dir)
    _, report = search_schnet(
        trained.model, trained.mset, trained.split, settings, progress=progress, log=log
    )
    if "config" in report["derived"]:
        record = arch_record(report, teacher=str(job.teacher), target=trained.target)
        atomic_write_text(job.out, json.dumps(record, indent=1) + "\n")
    return report
