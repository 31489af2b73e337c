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


DEFAULT_SPLIT = "val"  # what tuning reads
FINAL_SPLIT = "test"  # read once per preset and seed, at the end (`--final`)


class TooFewClips(ValueError):
    """The evaluation set holds fewer clips than one R-precision pool."""


class TestSplitRefused(ValueError):
    """The test split was asked for without `final`: every value tuned on it would make its figures optimistic."""


def check_split(split: str | None, final: bool) -> None:
    """Refuse `test` unless this is the final reading (`--final`); raises TestSplitRefused."""
    if split == FINAL_SPLIT and not final:
        raise TestSplitRefused("the test split is read once per preset and seed, at the end, for the figures you "
                               "report: pass --final to read it (tune on --split val, the default)")


def eval_clips(dataset: Path, split: str | None = None, final: bool = False) -> tuple[list[dict], str]:
    """(evaluation clips, name of the evaluation set).

    The evaluation set must hold at least one R-precision pool (32 clips). A split asked for
    (`train`, `val`, `test`, or `all`, which includes the training clips) is used as asked, or
    refused with the counts when it is too small; `test` only when `final` (check_split). The
    default (None) is the val split, or with `final` the test split (val+test, with a warning, when
    test holds fewer than 32 clips). The default never reaches the training clips. The evaluator
    itself only ever trains on the train split (clutch_core.eval.evaluator_store).
    """
    check_split(split, final)
    rows = load_clips(dataset, None)
    if not rows:
        raise ValueError(f"{dataset}: the dataset has no clips")
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    have = ", ".join(f"{n} {s}" for s, n in counts.items())
    if split is not None:
        chosen = rows if split == "all" else [r for r in rows if r["split"] == split]
        if len(chosen) < R_POOL:
            raise TooFewClips(f"{dataset}: the {split} split has {len(chosen)} clips ({have}); R-precision needs "
                             f"at least {R_POOL}. Evaluate a larger split (--split), or a larger dataset")
        if split in ("all", "train"):
            log.warning("evaluating on %s clips, which the models trained on", split)
        return chosen, split
    default = FINAL_SPLIT if final else DEFAULT_SPLIT
    chosen = [r for r in rows if r["split"] == default]
    if len(chosen) >= R_POOL:
        return chosen, default
    if not final:
        raise TooFewClips(f"{dataset}: the val split has {len(chosen)} clips ({have}); R-precision needs at least "
                         f"{R_POOL}. Build or synthesize a larger dataset, or read the held-out clips once with "
                         "--final (test, or val+test when test is small)")
    chosen = [r for r in rows if r["split"] in ("val", "test")]
    if len(chosen) < R_POOL:
        raise TooFewClips(f"{dataset}: {len(chosen)} held-out clips ({have}); R-precision needs at least {R_POOL}. "
                         f"Build or synthesize a larger dataset, or evaluate on `--split train` knowingly")
    log.warning("the test split has %d clips, fewer than one R-precision pool (%d): evaluating on val+test "
                "(%d clips) instead", counts["test"], R_POOL, len(chosen))
    return chosen, "val+test"
