"""What a build still has to do on a dataset folder, and repairing a killed build's leftovers.

Invariant kept by build-3dhiw: a video is `done` exactly when all its clips are in the
one shard the ledger names for it (or it has no clip and no shard). A batch writes its
shard first and marks its videos done after, so a build killed in between leaves a shard
whose videos are not (all) done. `reconcile_shards` runs at the start of every build,
while the dataset lock is held, and adopts such a shard (its clips are complete: a shard
is written atomically after every video of the batch was annotated) or deletes a stale
copy, so a rerun never duplicates nor loses a clip.
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

import pyarrow.parquet as pq

from storage.ledger import FingerprintMismatch, Ledger
from storage.writer import list_shards

log = logging.getLogger(__name__)

LOCK_FILE = ".build.lock"
SETTINGS_META = "settings"


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
    ledger.requeue_running()
    todo, skipped = [], {}
    for vid in video_ids:
        rec = ledger.get(vid)
        state = rec.state if rec else "pending"
        if state == "failed" and retry_failed or state == "quarantined" and include_quarantined:
            ledger.reset(vid)
            state = "pending"
        if state == "pending":
            todo.append(vid)
        else:
            skipped[vid] = state
    return Plan([todo[i:i + batch_size] for i in range(0, len(todo), batch_size)], skipped)


def reconcile_shards(ledger: Ledger, dataset_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Make shards and ledger agree after a killed build; returns {'adopted': [...], 'deleted': [...]}.

    - a shard whose videos are not done (killed between shard write and marking): its
      videos are marked done with it (adopted);
    - a shard whose videos are all done in other shards: a stale copy, deleted.
    """
    done = {r.video_id: r.shard for r in ledger.by_state("done")}
    adopted, deleted = [], []
    for shard in list_shards(dataset_dir):
        vids = set(pq.read_table(shard, columns=["video_id"]).column("video_id").to_pylist())
        here = {v for v in vids if done.get(v) == shard.name}
        elsewhere = {v for v in vids if v in done and done[v] != shard.name}
        if elsewhere and not here:
            log.warning("deleting %s: its videos are already done in other shards", shard)
            shard.unlink()
            deleted.append(shard.name)
        elif elsewhere:
            raise RuntimeError(f"{shard}: videos {sorted(elsewhere)} are done in other shards as well; "
                               "the dataset is inconsistent (was it written by two builds at once?)")
        elif vids - here:
            for v in sorted(vids - here):
                if ledger.get(v) is None:
                    raise RuntimeError(f"{shard}: holds clips of video {v} that the ledger does not know")
                ledger.mark_done(v, shard.name)
            log.info("adopted %s (written by a build that stopped before marking it)", shard.name)
            adopted.append(shard.name)
    return {"adopted": adopted, "deleted": deleted}


def count_clips(dataset_dir: str | os.PathLike) -> int:
    """Number of clips in the dataset; raises RuntimeError if a clip_id is stored twice."""
    from storage.catalog import connect

    n, distinct = connect(dataset_dir).execute("SELECT count(*), count(DISTINCT clip_id) FROM clips").fetchone()
    if n != distinct:
        raise RuntimeError(f"dataset {dataset_dir}: {n - distinct} duplicate clip rows")
    return int(n)
