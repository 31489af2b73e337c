"""What a build still has to do on a dataset folder, and repairing what a stopped build or a damaged disk left.

Invariant kept by build-3dhiw: a video is `done` exactly when all its clips are in the
one shard the ledger names for it (or it has no clip and no shard), and the ledger holds
that shard's size, checksum and clip ids. A batch writes its shard first and marks its
videos done after, so a build killed in between leaves a shard whose videos are not done.
`reconcile_shards` runs at the start of every build, while the dataset lock is held: it
runs storage.verify's cheap checks, adopts such a shard (its clips are complete: a shard is
written atomically after every video of the batch was annotated), deletes a stale copy, and
moves a damaged shard aside with its videos set back to pending; a missing shard's videos
go back to pending too. A rerun therefore never duplicates nor loses a clip.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from storage.ledger import LEDGER_FILE, FingerprintMismatch, Ledger

log = logging.getLogger(__name__)

LOCK_FILE = ".build.lock"
SETTINGS_META = "settings"
INTERRUPTED = ("interrupted: the build working on it stopped (killed, or an error) before it was done; "
               "the next build does it again")


class DatasetBusy(RuntimeError):
    """Another build holds the dataset folder."""


class SettingsMismatch(FingerprintMismatch):
    """The dataset was built with other output-changing settings; says which and what to do."""


@contextmanager
def dataset_lock(dataset_dir: str | os.PathLike) -> Iterator[Path]:
    """Exclusive build lock on DATASET (released by the OS when the holder dies).

    Holding it proves no other build is alive, so `running` ledger rows are leftovers.
    """
    d = Path(dataset_dir)
    d.mkdir(parents=True, exist_ok=True)
    fh = open(d / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetBusy(f"another build is running on {d} (lock {d / LOCK_FILE}); "
                              "wait for it or stop it") from None
        yield d
    finally:
        fh.close()


def release_stale_running(dataset_dir: str | os.PathLike) -> int:
    """`running` videos back to pending with a reason, when no live build holds the dataset.

    A video is running only while a process holds the lock; a killed or failed build's
    leftovers are not. Returns how many were released (0 while a build runs).
    """
    d = Path(dataset_dir)
    if not (d / LEDGER_FILE).exists():
        return 0
    ledger = Ledger(d)
    if not ledger.counts()["running"]:
        return 0
    try:
        with dataset_lock(d):
            return ledger.requeue_running(INTERRUPTED)
    except (DatasetBusy, PermissionError):  # a live build; or a read-only copy we cannot lock
        return 0


def check_settings(ledger: Ledger, fingerprint: str, settings: dict) -> None:
    """Record the dataset's settings, or refuse different ones, naming the differences."""
    settings = json.loads(json.dumps(settings, sort_keys=True, default=str))  # as stored (tuples -> lists)
    old = ledger.fingerprint
    if old is not None and old != fingerprint:
        before = json.loads(ledger.get_meta(SETTINGS_META) or "{}")
        diff = {k: (before.get(k), settings.get(k)) for k in sorted(set(before) | set(settings))
                if before.get(k) != settings.get(k)}
        what = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()) or "unknown settings"
        raise SettingsMismatch(
            f"dataset {ledger.path.parent} was built with settings fingerprint {old}, these settings give "
            f"{fingerprint} ({what}). One dataset holds one set of settings: write to a new --out folder, "
            "or rerun with the original settings.")
    ledger.ensure_fingerprint(fingerprint)
    ledger.set_meta(SETTINGS_META, json.dumps(settings, sort_keys=True, default=str))


def batch_key(video_ids: Sequence[str]) -> str:
    """Shard key of a batch: the same set of videos always gives the same shard name."""
    h = hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()[:16]
    return f"b{h}"


@dataclass(frozen=True)
class Plan:
    """Batches of video ids still to build, and the ids skipped with their state."""

    batches: list[list[str]]
    skipped: dict[str, str]  # video_id -> done | failed | quarantined

    @property
    def num_videos(self) -> int:
        return sum(len(b) for b in self.batches)


def plan_batches(ledger: Ledger, video_ids: Sequence[str], batch_size: int, *,
                 retry_failed: bool = False, include_quarantined: bool = False) -> Plan:
    """Pick the videos to build (pending; failed / quarantined only when asked) and batch them.

    Call under dataset_lock after reconcile_shards: `running` rows then belong to a dead build.
    Batches follow the given order so a rerun with the same inputs makes the same batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ledger.requeue_running(INTERRUPTED)
    todo, skipped, again = [], {}, []
    known = ledger.states(video_ids)  # one query, not one per video (a 100K-video ledger plans in seconds)
    for vid in video_ids:
        state = known.get(vid, "pending")
        if state == "failed" and retry_failed or state == "quarantined" and include_quarantined:
            again.append(vid)
            state = "pending"
        if state == "pending":
            todo.append(vid)
        else:
            skipped[vid] = state
    if again:
        ledger.reset_many(again)
    return Plan([todo[i:i + batch_size] for i in range(0, len(todo), batch_size)], skipped)


def reconcile_shards(ledger: Ledger, dataset_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Make shards and ledger agree before a build (storage.verify's cheap checks, then repair).

    Returns {'adopted': [...], 'deleted': [...]} (shard names), plus 'moved_aside' (damaged
    shards now in shards/.damaged/) and 'requeued' (their videos, and those of missing
    shards, back to pending) when there was damage.
    """
    from storage.verify import check, repair

    report = check(ledger, dataset_dir)
    for f in report.findings:
        log.warning("%s %s: %s", f.problem, f.file, f.detail)
    out = repair(ledger, dataset_dir, report)
    return {k: v for k, v in out.items() if v or k in ("adopted", "deleted")}


def count_clips(dataset_dir: str | os.PathLike) -> int:
    """Number of clips in the dataset; raises RuntimeError if a clip_id is stored twice."""
    from storage.catalog import connect

    n, distinct = connect(dataset_dir).execute("SELECT count(*), count(DISTINCT clip_id) FROM clips").fetchone()
    if n != distinct:
        raise RuntimeError(f"dataset {dataset_dir}: {n - distinct} duplicate clip rows")
    return int(n)
