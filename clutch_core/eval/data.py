"""Clips for training and evaluating the evaluator, read through storage.reader."""
from __future__ import annotations

import logging
from pathlib import Path

from clutch_core.eval.metrics import R_POOL

log = logging.getLogger(__name__)

EVAL_COLUMNS = ["clip_id", "num_frames", "split", "motion", "presence", "captions"]


def load_clips(dataset: Path, split: str | None, columns: list[str] | None = None) -> list[dict]:
    """Rows of one split (None = all) with the columns evaluation needs."""
    from storage.reader import ClipReader

    return ClipReader(dataset).read_rows(split=split, columns=columns or EVAL_COLUMNS)


def eval_clips(dataset: Path, split: str = "test") -> tuple[list[dict], str]:
    """(evaluation clips, name of the evaluation set).

    The evaluation set must hold at least one R-precision pool (32 clips): when the
    asked split is smaller, val+test and then every clip are used instead, and the
    name says so (a small corpus is then measured on clips the evaluator saw). The
    evaluator itself only ever trains on the train split (clutch_core.eval.evaluator_store).
    """
    rows = load_clips(dataset, None)
    if not rows:
        raise ValueError(f"{dataset}: the dataset has no clips")
    if split == "all":
        return rows, "all"
    chosen = [r for r in rows if r["split"] == split]
    name = split
    if len(chosen) < R_POOL:
        chosen = [r for r in rows if r["split"] in ("val", "test")]
        name = "val+test"
    if len(chosen) < R_POOL:
        chosen, name = rows, "all"
        log.warning("fewer than %d held-out clips: evaluating on all %d clips (includes training clips)", R_POOL, len(rows))
    if len(chosen) < R_POOL:
        raise ValueError(f"{dataset}: {len(chosen)} clips, R-precision needs at least {R_POOL}")
    return chosen, name
