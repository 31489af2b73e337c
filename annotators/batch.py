"""One batch of build-3dhiw: annotate each video, write one shard, then mark the videos done.

The order is what makes a build safe to kill at any moment (see storage/resume.py):
the shard (atomic, deterministic name from the batch's video ids) is written before any
video of the batch is marked done, and its facts (size, checksum, clip ids per video) are
recorded in the same transaction that marks them. A bad video is quarantined and a video
that still fails after the caller's retries is marked failed, and neither stops the batch.
An error of the batch itself (no space left for the shard, an interrupt) sets the batch's
unfinished videos back to pending with the reason, so none stays `running` after the process.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from clutch_core.video import BadVideoError
from annotators.inputs import VideoInput
from storage.integrity import shard_facts
from storage.ledger import Ledger
from storage.remote import push_ledger
from storage.resume import batch_key
from storage.writer import write_shard

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What one batch did (returned by the flow's batch task)."""

    key: str
    shard: str | None = None
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # video_id -> error
    quarantined: dict[str, str] = field(default_factory=dict)  # video_id -> reason
    skipped: dict[str, str] = field(default_factory=dict)  # video_id -> why (file changed since discovery)
    clips: int = 0
    frames: int = 0  # frames of the written clips


class Progress:
    """Thread-safe counters of the batches run in this process. `clutch build`'s bar counts Prefect's
    task states instead (flows/build_progress.py), which also sees batches run in other processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset(0)

    def reset(self, total: int) -> None:
        with self._lock:
            self.total, self.done, self.failed, self.quarantined = total, 0, 0, 0
            self.clips, self.frames = 0, 0  # frames: 15 fps timeline frames annotated

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: getattr(self, k) for k in ("total", "done", "failed", "quarantined", "clips", "frames")}

    def __reduce__(self):
        # Dask/Ray ship task functions to worker processes by value: the counters travel as a
        # reference to the receiving process's own PROGRESS (a lock cannot be pickled, and a
        # worker's counts would not reach the driver's progress bar anyway).
        return (_process_progress, ())


def _process_progress() -> "Progress":
    return PROGRESS


PROGRESS = Progress()

# Annotate one video: returns its VideoResult, raises BadVideoError for bad input, or raises the
# last transient error once the caller's retries are spent.
Annotate = Callable[[VideoInput], Any]


def _ledger_records(result, source: str) -> list[tuple]:
    """The video's dropped and marked clips for the ledger (VideoResult.ledger_records; a stand-in
    result with only `dropped` counts gets one timeless record per dropped clip)."""
    if hasattr(result, "ledger_records"):
        return result.ledger_records(source)
    return [(None, None, reason, source) for reason, n in result.dropped for _ in range(int(n))]


SETTLE_S = 2.0  # a file judged unreadable that was written to less than this long ago gets that long to change


def _skip_if_changed(ledger: Ledger, v: VideoInput, out: BatchOutcome, pending: set[str],
                     settle_s: float = 0.0) -> bool:
    """A file that changed since discovery (still being copied) leaves the ledger: its id names a partial
    content that no later build will see again; the next build finds the whole file under its own id."""
    why = v.changed(settle_s)
    if why is None:
        return False
    ledger.forget(v.video_id)
    pending.discard(v.video_id)
    out.skipped[v.video_id] = why
    log.warning("skipped %s; the next build takes it", why)
    return True


def run_batch(dataset_dir: str | Path, videos: Sequence[VideoInput], annotate: Annotate,
              progress: Progress = PROGRESS) -> BatchOutcome:
    """Annotate `videos`, write their clips as shard part-<batch_key>.parquet, mark them in the ledger."""
    ledger = Ledger(dataset_dir)
    out = BatchOutcome(batch_key([v.video_id for v in videos]))
    pending = {v.video_id for v in videos}  # not yet done, failed or quarantined
    try:
        _annotate_and_write(dataset_dir, ledger, videos, annotate, progress, out, pending)
    except BaseException as e:  # the batch stops: its unfinished videos must not stay `running`
        ledger.requeue([v.video_id for v in videos if v.video_id in pending],
                       f"interrupted: {type(e).__name__}: {e}; the next build does it again")
        raise
    return out


def _annotate_and_write(dataset_dir, ledger: Ledger, videos: Sequence[VideoInput], annotate: Annotate,
                        progress: Progress, out: BatchOutcome, pending: set[str]) -> None:
    rows: list[dict] = []
    finished: list[VideoInput] = []
    for v in videos:
        if _skip_if_changed(ledger, v, out, pending):
            continue
        ledger.mark_running(v.video_id)
        try:
            result = annotate(v)
        except BadVideoError as e:
            if _skip_if_changed(ledger, v, out, pending, SETTLE_S):  # a partial file is not bad input
                continue
            reason = str(e) if v.path in str(e) else f"{v.path}: {e}"
            ledger.mark_quarantined(v.video_id, reason)
            pending.discard(v.video_id)
            out.quarantined[v.video_id] = reason
            progress.add(quarantined=1)
            log.debug("quarantined %s", reason)  # the flow logs it as a warning through its run logger
            continue
        except Exception as e:  # retries are spent: keep the error text for --retry-failed
            if _skip_if_changed(ledger, v, out, pending, SETTLE_S):
                continue
            error = f"{v.path}: {type(e).__name__}: {e}"
            ledger.mark_failed(v.video_id, error)
            pending.discard(v.video_id)
            out.failed[v.video_id] = error
            progress.add(failed=1)
            log.error("failed %s", error)
            continue
        if _skip_if_changed(ledger, v, out, pending):  # clips of a file that grew meanwhile are not kept
            continue
        ledger.record_dropped(v.video_id, _ledger_records(result, v.path))
        rows.extend(result.rows)
        finished.append(v)
        out.clips += len(result.rows)
        out.frames += sum(int(r["num_frames"]) for r in result.rows)
        progress.add(clips=len(result.rows))
    facts = None
    if rows:
        facts = shard_facts(write_shard(dataset_dir, out.key, rows))
        out.shard = facts.name
    # only now: the shard holding their clips is complete on disk
    ledger.mark_batch_done([v.video_id for v in finished], facts)
    push_ledger(dataset_dir)  # a dataset bound to a store URL: its ledger snapshot follows each batch
    for v in finished:
        pending.discard(v.video_id)
        out.done.append(v.video_id)
        progress.add(done=1)
