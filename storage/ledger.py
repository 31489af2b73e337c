"""The run ledger: one row per source video, in SQLite at DATASET/ledger.sqlite.

Why SQLite: durable, a single file beside the shards, and safe with several worker
processes reporting at once when used this way:
- WAL journal mode (readers never block the writer, a crash never corrupts the file);
- busy_timeout, so a writer waits for the lock instead of failing at once;
- every change is one short `BEGIN IMMEDIATE` transaction (the write lock is taken up
  front, so two workers never deadlock upgrading a read lock);
- a fresh connection per call, so forked workers and threads never share one.

States: pending -> running -> done | failed | quarantined. `failed` videos are claimed
again by the next run; `quarantined` ones (bad input) are not.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

STATES = ("pending", "running", "done", "failed", "quarantined")
LEDGER_FILE = "ledger.sqlite"
BUSY_TIMEOUT_MS = 60_000

_DDL = """
CREATE TABLE IF NOT EXISTS videos (
    video_id    TEXT PRIMARY KEY,
    source_uri  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending','running','done','failed','quarantined')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    shard       TEXT,
    fingerprint TEXT NOT NULL,
    worker      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS videos_state ON videos(state);
CREATE TABLE IF NOT EXISTS dropped_clips (
    video_id TEXT NOT NULL,
    start_s  REAL,
    end_s    REAL,
    reason   TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX IF NOT EXISTS dropped_video ON dropped_clips(video_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("video_id", "source_uri", "state", "attempts", "error", "shard", "fingerprint", "worker",
            "created_at", "updated_at", "started_at", "finished_at")


class FingerprintMismatch(ValueError):
    """A video or dataset was registered with different output-changing settings."""


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    source_uri: str
    state: str
    attempts: int
    error: str | None
    shard: str | None
    fingerprint: str
    worker: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Ledger:
    """Per-video build state of one dataset (DATASET/ledger.sqlite)."""

    def __init__(self, dataset_dir: str | os.PathLike):
        self.path = Path(dataset_dir) / LEDGER_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
            db.executescript(_DDL)
        finally:
            db.close()

    # -- plumbing ------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss mid-checkpoint
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction that takes the write lock up front."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        db = self._connect()
        try:
            return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.close()

    def _set_state(self, video_id: str, state: str, **cols) -> VideoRecord:
        cols.update(state=state, updated_at=_now())
        sets = ", ".join(f"{k} = ?" for k in cols)
        with self._tx() as db:
            cur = db.execute(f"UPDATE videos SET {sets} WHERE video_id = ?", (*cols.values(), video_id))
            if cur.rowcount == 0:
                raise KeyError(f"ledger {self.path}: unknown video_id {video_id!r}")
        return self.get(video_id)

    # -- dataset-level metadata ---------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def fingerprint(self) -> str | None:
        return self.get_meta("fingerprint")

    def ensure_fingerprint(self, fingerprint: str) -> None:
        """Record the dataset's settings hash, or raise FingerprintMismatch if it differs."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta(key, value) VALUES ('fingerprint', ?)", (fingerprint,))
            elif row[0] != fingerprint:
                raise FingerprintMismatch(
                    f"dataset {self.path.parent} was built with settings {row[0]!r}, now {fingerprint!r}: "
                    "use a new output folder or the original settings")

    # -- per-video -----------------------------------------------------------
    def register(self, video_id: str, source_uri: str, fingerprint: str) -> VideoRecord:
        """Add a video as pending; an already known video keeps its state (its path is updated)."""
        now = _now()
        with self._tx() as db:
            row = db.execute("SELECT fingerprint FROM videos WHERE video_id = ?", (video_id,)).fetchone()
            if row is None:
                db.execute("INSERT INTO videos(video_id, source_uri, state, fingerprint, created_at, updated_at) "
                           "VALUES (?, ?, 'pending', ?, ?, ?)", (video_id, str(source_uri), fingerprint, now, now))
            elif row[0] != fingerprint:
                raise FingerprintMismatch(f"video {video_id!r} ({source_uri}) is in the ledger with settings "
                                          f"{row[0]!r}, now {fingerprint!r}")
            else:
                db.execute("UPDATE videos SET source_uri = ? WHERE video_id = ?", (str(source_uri), video_id))
        return self.get(video_id)

    def claim(self, video_id: str) -> bool:
        """Mark a pending or failed video running (attempts += 1); False if it is done, running or quarantined."""
        now = _now()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE videos SET state = 'running', attempts = attempts + 1, worker = ?, started_at = ?, "
                "updated_at = ?, error = NULL WHERE video_id = ? AND state IN ('pending', 'failed')",
                (_worker(), now, now, video_id))
            return cur.rowcount == 1

    def claim_batch(self, limit: int, max_attempts: int | None = None) -> list[VideoRecord]:
        """Atomically claim up to `limit` pending/failed videos (oldest first) for this worker."""
        now = _now()
        with self._tx() as db:
            sql = "SELECT video_id FROM videos WHERE state IN ('pending', 'failed')"
            params: list = []
            if max_attempts is not None:
                sql += " AND attempts < ?"
                params.append(max_attempts)
            ids = [r[0] for r in db.execute(sql + " ORDER BY created_at, video_id LIMIT ?", (*params, limit))]
            db.executemany("UPDATE videos SET state = 'running', attempts = attempts + 1, worker = ?, "
                           "started_at = ?, updated_at = ?, error = NULL WHERE video_id = ?",
                           [(_worker(), now, now, v) for v in ids])
        return [self.get(v) for v in ids]

    def mark_running(self, video_id: str) -> VideoRecord:
        """Force a video to running (attempts += 1) whatever its state."""
        now = _now()
        with self._tx() as db:
            cur = db.execute("UPDATE videos SET state = 'running', attempts = attempts + 1, worker = ?, "
                             "started_at = ?, updated_at = ?, error = NULL WHERE video_id = ?",
                             (_worker(), now, now, video_id))
            if cur.rowcount == 0:
                raise KeyError(f"ledger {self.path}: unknown video_id {video_id!r}")
        return self.get(video_id)

    def mark_done(self, video_id: str, shard: str | None) -> VideoRecord:
        """The video's clips are in `shard` (a shard file name; None when it produced no clip)."""
        return self._set_state(video_id, "done", shard=shard, error=None, finished_at=_now())

    def mark_failed(self, video_id: str, error: str) -> VideoRecord:
        """A retryable failure (the next run claims it again)."""
        return self._set_state(video_id, "failed", error=str(error), finished_at=_now())

    def mark_quarantined(self, video_id: str, reason: str) -> VideoRecord:
        """Bad input: never retried automatically."""
        return self._set_state(video_id, "quarantined", error=str(reason), finished_at=_now())

    def reset(self, video_id: str) -> VideoRecord:
        """Back to pending (e.g. to retry a quarantined video by hand)."""
        return self._set_state(video_id, "pending", error=None, shard=None)

    def requeue_running(self) -> int:
        """Running videos of a crashed run back to pending; returns how many."""
        with self._tx() as db:
            return db.execute("UPDATE videos SET state = 'pending', updated_at = ? WHERE state = 'running'",
                              (_now(),)).rowcount

    def record_done(self, videos: dict[str, str], fingerprint: str, shard: str) -> None:
        """Register many videos ({video_id: source_uri}) straight as done in `shard`, in one transaction.

        For writers that produce clips without a claim step (`clutch synth`, imports).
        """
        now = _now()
        with self._tx() as db:
            bad = db.execute(f"SELECT video_id, fingerprint FROM videos WHERE fingerprint != ? AND video_id IN "
                             f"({', '.join('?' * len(videos))})", (fingerprint, *videos)).fetchall()
            if bad:
                raise FingerprintMismatch(f"video {bad[0][0]!r} is in the ledger with settings {bad[0][1]!r}, "
                                          f"now {fingerprint!r}")
            db.executemany(
                "INSERT INTO videos(video_id, source_uri, state, attempts, shard, fingerprint, worker, created_at, "
                "updated_at, started_at, finished_at) VALUES (?, ?, 'done', 1, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(video_id) DO UPDATE SET state = 'done', shard = excluded.shard, error = NULL, "
                "source_uri = excluded.source_uri, updated_at = excluded.updated_at, finished_at = excluded.finished_at",
                [(v, uri, shard, fingerprint, _worker(), now, now, now, now) for v, uri in videos.items()])

    def get(self, video_id: str) -> VideoRecord | None:
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM videos WHERE video_id = ?", (video_id,))
        return VideoRecord(*rows[0]) if rows else None

    def by_state(self, *states: str) -> list[VideoRecord]:
        """Videos in any of `states` (all videos when none given), by video_id."""
        bad = set(states) - set(STATES)
        if bad:
            raise ValueError(f"unknown ledger state(s) {sorted(bad)}; states are {STATES}")
        sql = f"SELECT {', '.join(_COLUMNS)} FROM videos"
        if states:
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
        return [VideoRecord(*r) for r in self._query(sql + " ORDER BY video_id", states)]

    def counts(self) -> dict[str, int]:
        """Number of videos per state (every state present, zeros included)."""
        out = dict.fromkeys(STATES, 0)
        out.update(dict(self._query("SELECT state, count(*) FROM videos GROUP BY state")))
        return out

    # -- dropped clips (for the dataset card) --------------------------------
    def record_dropped(self, video_id: str, dropped: Iterable[tuple[float | None, float | None, str, str | None]]) -> None:
        """Replace the video's dropped-clip records: (start_s, end_s, reason, detail) per dropped clip."""
        items = [(video_id, s, e, r, d) for s, e, r, d in dropped]
        with self._tx() as db:
            db.execute("DELETE FROM dropped_clips WHERE video_id = ?", (video_id,))
            db.executemany("INSERT INTO dropped_clips VALUES (?, ?, ?, ?, ?)", items)

    def dropped_counts(self) -> dict[str, int]:
        """Dropped clips per reason over the whole dataset."""
        return dict(self._query("SELECT reason, count(*) FROM dropped_clips GROUP BY reason ORDER BY 2 DESC"))

    def clipless(self) -> list[tuple[VideoRecord, dict[str, int]]]:
        """Videos done with zero clips, each with its dropped-clip reasons ({reason: count})."""
        out = []
        for rec in self.by_state("done"):
            if rec.shard is None:
                rows = self._query("SELECT reason, count(*) FROM dropped_clips WHERE video_id = ? "
                                   "GROUP BY reason ORDER BY 2 DESC, 1", (rec.video_id,))
                out.append((rec, dict(rows)))
        return out

    def to_arrow(self):
        """Snapshot of the videos table as a pyarrow Table (for the DuckDB `ledger` view)."""
        import pyarrow as pa

        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM videos ORDER BY video_id")
        return pa.Table.from_pylist([dict(zip(_COLUMNS, r)) for r in rows], schema=ledger_arrow_schema())


def ledger_arrow_schema():
    """Arrow schema of the ledger snapshot (also used when a dataset has no ledger yet)."""
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c == "attempts" else pa.string()) for c in _COLUMNS])
