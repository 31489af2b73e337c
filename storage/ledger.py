"""The run ledger: one row per source video, in SQLite at DATASET/ledger.sqlite.

Why SQLite: durable, a single file beside the shards, and safe with several worker
processes reporting at once when used this way:
- WAL journal mode (readers never block the writer, a crash never corrupts the file);
- busy_timeout, so a writer waits for the lock instead of failing at once;
- every change is one short `BEGIN IMMEDIATE` transaction (the write lock is taken up
  front, so two workers never deadlock upgrading a read lock);
- a fresh connection per call, so forked workers and threads never share one.

States: pending -> running -> done | failed | quarantined. `failed` videos are retried
with --retry-failed; `quarantined` ones (bad input) only when asked. A `pending` video may
carry a reason in `error` (its build was interrupted, its shard was damaged).

Where a done video's clips live is part of its row: `shard`, `num_clips` and `clips_sha256`
(sha256 of its sorted clip ids), and the `shards` table holds each shard's row count, size,
sha256 and mtime. Both are written in the transaction that marks the video done, so
storage.verify can tell a damaged or missing shard from a good one.
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from storage.integrity import ShardFacts, ShardFile

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
    detail   TEXT,
    action   TEXT
);
CREATE INDEX IF NOT EXISTS dropped_video ON dropped_clips(video_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    name       TEXT PRIMARY KEY,
    num_rows   INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    written_at TEXT NOT NULL
);
"""
# Columns added after the first release: ledgers written before get them on open (NULL = unknown).
_ADDED_COLUMNS = {"num_clips": "INTEGER", "clips_sha256": "TEXT"}
_ADDED_DROPPED_COLUMNS = {"action": "TEXT"}  # 'dropped' or 'marked' (NULL: dropped, written before marking existed)
CLIP_ACTIONS = ("dropped", "marked")
_COLUMNS = ("video_id", "source_uri", "state", "attempts", "error", "shard", "fingerprint", "worker",
            "created_at", "updated_at", "started_at", "finished_at", *_ADDED_COLUMNS)


NEARLY_FULL_BYTES = 4 << 20  # below this much free space, SQLite's "disk I/O error" is taken for a full disk


class LedgerNoSpace(OSError):
    """The ledger could not be written because its filesystem is full (nothing in it is lost)."""

    def __init__(self, path, sqlite_error: str, free_bytes: int):
        import errno

        self.path, self.sqlite_error, self.free_bytes = Path(path), sqlite_error, int(free_bytes)
        self.message = (f"no space left on device for the ledger {self.path} (SQLite: {sqlite_error}; "
                        f"{free_bytes / 1e3:.0f} kB free); free space and rerun the same command: it resumes")
        super().__init__(errno.ENOSPC, self.message, str(self.path))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return LedgerNoSpace, (self.path, self.sqlite_error, self.free_bytes)


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
    num_clips: int | None = None  # clips of this video in `shard` (None: not recorded)
    clips_sha256: str | None = None  # storage.integrity.clips_digest of its clip ids


@dataclass(frozen=True)
class ShardRecord(ShardFile):
    """A shard as the ledger last saw it whole (storage.integrity.ShardFile), and when it was written."""

    written_at: str


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
            for wait in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0.0):  # switching to WAL is not covered by busy_timeout
                try:
                    db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or not wait:
                        raise
                    time.sleep(wait)
        finally:
            db.close()
        # Under the write lock: workers that open a fresh ledger at once must not both add a column.
        with self._tx() as db:
            for stmt in _DDL.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            for table, added in (("videos", _ADDED_COLUMNS), ("dropped_clips", _ADDED_DROPPED_COLUMNS)):
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                for col, typ in added.items():
                    if col not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {typ}")

    # -- plumbing ------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss mid-checkpoint
        except sqlite3.OperationalError as e:
            raise self._no_space(e) or e
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction that takes the write lock up front."""
        db = self._connect()
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.OperationalError as e:
                raise self._no_space(e) or e
        finally:
            db.close()

    def _no_space(self, e: sqlite3.OperationalError) -> "LedgerNoSpace | None":
        """SQLite reports a full disk as "disk I/O error" or "database or disk is full": say so."""
        import shutil

        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return None
        if "full" in str(e) or ("disk I/O" in str(e) and free < NEARLY_FULL_BYTES):
            return LedgerNoSpace(self.path, str(e), free)
        return None

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

    def register_many(self, videos: Iterable[tuple[str, str]], fingerprint: str) -> None:
        """`register` for many (video_id, source_uri) pairs in one transaction: a build of 100K videos
        plans in seconds, not in one transaction per video."""
        now, items = _now(), [(v, str(uri)) for v, uri in videos]
        with self._tx() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (video_id TEXT PRIMARY KEY, source_uri TEXT)")
            db.execute("DELETE FROM incoming")
            db.executemany("INSERT OR REPLACE INTO incoming VALUES (?, ?)", items)
            bad = db.execute("SELECT i.video_id, i.source_uri, v.fingerprint FROM incoming i JOIN videos v "
                             "USING (video_id) WHERE v.fingerprint != ? LIMIT 1", (fingerprint,)).fetchone()
            if bad:
                raise FingerprintMismatch(f"video {bad[0]!r} ({bad[1]}) is in the ledger with settings "
                                          f"{bad[2]!r}, now {fingerprint!r}")
            db.execute("UPDATE videos SET source_uri = (SELECT source_uri FROM incoming i "
                       "WHERE i.video_id = videos.video_id) WHERE video_id IN (SELECT video_id FROM incoming)")
            db.execute("INSERT OR IGNORE INTO videos(video_id, source_uri, state, fingerprint, created_at, updated_at) "
                       "SELECT video_id, source_uri, 'pending', ?, ?, ? FROM incoming", (fingerprint, now, now))
            db.execute("DELETE FROM incoming")

    def forget_superseded(self, videos: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Forget pending or running rows whose file now holds other content: a (video_id, source_uri) of
        this build names a path that the ledger knows under another id that no file of this build has (a
        file that was still being copied when an earlier build hashed it). Returns the forgotten
        (video_id, source_uri); done, failed and quarantined rows are kept."""
        items = [(v, str(uri)) for v, uri in videos]
        ids, paths = {v for v, _ in items}, {uri for _, uri in items}
        rows = self._query("SELECT video_id, source_uri FROM videos WHERE state IN ('pending', 'running')")
        gone = [(v, uri) for v, uri in rows if uri in paths and v not in ids]
        if gone:
            with self._tx() as db:
                db.executemany("DELETE FROM videos WHERE video_id = ? AND state IN ('pending', 'running')",
                               [(v,) for v, _ in gone])
                db.executemany("DELETE FROM dropped_clips WHERE video_id = ?", [(v,) for v, _ in gone])
        return gone

    def states(self, video_ids: Iterable[str] | None = None) -> dict[str, str]:
        """{video_id: state} of the given videos that the ledger knows (all of them when None), in one query."""
        rows = self._query("SELECT video_id, state FROM videos")
        if video_ids is None:
            return dict(rows)
        want = set(video_ids)
        return {v: st for v, st in rows if v in want}

    def reset_many(self, video_ids: Iterable[str]) -> None:
        """`reset` for many videos in one transaction."""
        now = _now()
        with self._tx() as db:
            db.executemany("UPDATE videos SET state = 'pending', error = NULL, shard = NULL, num_clips = NULL, "
                           "clips_sha256 = NULL, updated_at = ? WHERE video_id = ?", [(now, v) for v in video_ids])

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
        """The video's clips are in `shard` (a shard file name; None when it produced no clip).

        Records no facts about the shard: writers use mark_batch_done.
        """
        return self._set_state(video_id, "done", shard=shard, error=None, finished_at=_now())

    def mark_batch_done(self, video_ids: Iterable[str], shard: ShardFacts | None) -> None:
        """Mark videos done in one transaction, with where their clips live.

        `shard` is the shard holding the clips of these videos (None: none of them has a clip);
        a video absent from `shard.videos` produced no clip.
        """
        now = _now()
        with self._tx() as db:
            if shard is not None:
                self._put_shard(db, shard, now)
            for v in video_ids:
                clips = shard.videos.get(v) if shard is not None else None
                cur = db.execute(
                    "UPDATE videos SET state = 'done', shard = ?, num_clips = ?, clips_sha256 = ?, error = NULL, "
                    "updated_at = ?, finished_at = ? WHERE video_id = ?",
                    (shard.name if clips else None, clips.num_clips if clips else 0,
                     clips.clips_sha256 if clips else None, now, now, v))
                if cur.rowcount == 0:
                    raise KeyError(f"ledger {self.path}: unknown video_id {v!r}")

    @staticmethod
    def _put_shard(db: sqlite3.Connection, s: ShardFacts, now: str) -> None:
        db.execute("INSERT INTO shards(name, num_rows, bytes, sha256, mtime_ns, written_at) VALUES (?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET num_rows = excluded.num_rows, bytes = excluded.bytes, "
                   "sha256 = excluded.sha256, mtime_ns = excluded.mtime_ns, written_at = excluded.written_at",
                   (s.name, s.num_rows, s.bytes, s.sha256, s.mtime_ns, now))

    def record_shard(self, shard: ShardFacts) -> None:
        """Record the facts of a shard whose videos are already done in it (ledgers from before the facts)."""
        now = _now()
        with self._tx() as db:
            self._put_shard(db, shard, now)
            db.executemany("UPDATE videos SET num_clips = ?, clips_sha256 = ? WHERE video_id = ? AND shard = ?",
                           [(c.num_clips, c.clips_sha256, v, shard.name) for v, c in shard.videos.items()])

    def restamp_shard(self, name: str, mtime_ns: int) -> None:
        """A shard's content was checked equal to its sha256 under a new mtime (e.g. after a copy)."""
        with self._tx() as db:
            db.execute("UPDATE shards SET mtime_ns = ? WHERE name = ?", (mtime_ns, name))

    def shard_records(self) -> dict[str, ShardRecord]:
        rows = self._query("SELECT name, num_rows, bytes, sha256, mtime_ns, written_at FROM shards")
        return {r[0]: ShardRecord(*r) for r in rows}

    def requeue(self, video_ids: Iterable[str], reason: str, forget_shard: str | None = None) -> None:
        """Videos back to pending with a reason (their clips are lost); forget the shard's record."""
        now = _now()
        with self._tx() as db:
            db.executemany("UPDATE videos SET state = 'pending', shard = NULL, num_clips = NULL, clips_sha256 = NULL, "
                           "error = ?, updated_at = ? WHERE video_id = ?", [(reason, now, v) for v in video_ids])
            if forget_shard is not None:
                db.execute("DELETE FROM shards WHERE name = ?", (forget_shard,))

    def forget(self, video_id: str) -> None:
        """Remove a video that is not done (its file changed under the build: the id names content that is
        gone); a done, failed or quarantined video is kept."""
        with self._tx() as db:
            cur = db.execute("DELETE FROM videos WHERE video_id = ? AND state IN ('pending', 'running')", (video_id,))
            if cur.rowcount:
                db.execute("DELETE FROM dropped_clips WHERE video_id = ?", (video_id,))

    def mark_failed(self, video_id: str, error: str) -> VideoRecord:
        """A failure after the retries (a run with --retry-failed tries it again)."""
        return self._set_state(video_id, "failed", error=str(error), finished_at=_now())

    def mark_quarantined(self, video_id: str, reason: str) -> VideoRecord:
        """Bad input: never retried automatically."""
        return self._set_state(video_id, "quarantined", error=str(reason), finished_at=_now())

    def reset(self, video_id: str) -> VideoRecord:
        """Back to pending (e.g. to retry a quarantined video by hand)."""
        return self._set_state(video_id, "pending", error=None, shard=None, num_clips=None, clips_sha256=None)

    def requeue_running(self, reason: str | None = None) -> int:
        """Running videos of a stopped run back to pending (with the reason); returns how many.

        Call only when no live build can hold them (storage.resume.dataset_lock is held).
        """
        with self._tx() as db:
            return db.execute("UPDATE videos SET state = 'pending', error = ?, updated_at = ? WHERE state = 'running'",
                              (reason, _now())).rowcount

    def record_done(self, videos: dict[str, str], fingerprint: str, shard: str) -> None:
        """Register many videos ({video_id: source_uri}) straight as done in `shard`, in one transaction.

        For writers that produce clips without a claim step (`clutch synth`, imports). The shard's
        facts (size, checksum, clips per video) are read back from DATASET/shards/`shard`.
        """
        from storage.integrity import shard_facts
        from storage.writer import SHARDS_DIR

        facts = shard_facts(self.path.parent / SHARDS_DIR / shard)
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
            self._put_shard(db, facts, now)
            db.executemany("UPDATE videos SET num_clips = ?, clips_sha256 = ? WHERE video_id = ?",
                           [(c.num_clips, c.clips_sha256, v) for v, c in facts.videos.items() if v in videos])

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

    # -- dropped and marked clips (the build's filters; for the dataset card) ----
    def record_dropped(self, video_id: str, dropped: Iterable[tuple]) -> None:
        """Replace the video's records of clips the filters dropped or marked: (start_s, end_s,
        reason, detail[, action]) per clip; action 'dropped' (the default) or 'marked' (kept,
        flagged in its quality struct)."""
        items = []
        for rec in dropped:
            s, e, r, d, *rest = rec
            action = rest[0] if rest else "dropped"
            if action not in CLIP_ACTIONS:
                raise ValueError(f"action must be one of {CLIP_ACTIONS}, got {action!r}")
            items.append((video_id, s, e, r, d, action))
        with self._tx() as db:
            db.execute("DELETE FROM dropped_clips WHERE video_id = ?", (video_id,))
            db.executemany("INSERT INTO dropped_clips (video_id, start_s, end_s, reason, detail, action) "
                           "VALUES (?, ?, ?, ?, ?, ?)", items)

    def dropped_counts(self, action: str = "dropped") -> dict[str, int]:
        """Clips per reason over the whole dataset that the filters dropped (or marked)."""
        return dict(self._query("SELECT reason, count(*) FROM dropped_clips WHERE coalesce(action, 'dropped') = ? "
                                "GROUP BY reason ORDER BY 2 DESC, 1", (action,)))

    def clip_records(self, action: str | None = None) -> list[tuple]:
        """Every dropped or marked clip: (video_id, source_uri, start_s, end_s, reason, detail, action),
        by video and time; only one action when given."""
        rows = self._query("SELECT d.video_id, v.source_uri, d.start_s, d.end_s, d.reason, d.detail, "
                           "coalesce(d.action, 'dropped') AS a FROM dropped_clips d LEFT JOIN videos v USING (video_id) "
                           "ORDER BY d.video_id, d.start_s, d.reason")
        return [r for r in rows if action is None or r[6] == action]

    def clipless(self) -> list[tuple[VideoRecord, dict[str, int]]]:
        """Videos done with zero clips, each with its dropped-clip reasons ({reason: count})."""
        out = []
        for rec in self.by_state("done"):
            if rec.shard is None:
                rows = self._query("SELECT reason, count(*) FROM dropped_clips WHERE video_id = ? "
                                   "AND coalesce(action, 'dropped') = 'dropped' GROUP BY reason ORDER BY 2 DESC, 1",
                                   (rec.video_id,))
                out.append((rec, dict(rows)))
        return out

    def dropped_arrow(self):
        """`clip_records()` as a pyarrow Table (for the DuckDB `dropped_clips` view)."""
        import pyarrow as pa

        schema = dropped_arrow_schema()
        return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in self.clip_records()], schema=schema)

    def to_arrow(self):
        """Snapshot of the videos table as a pyarrow Table (for the DuckDB `ledger` view)."""
        import pyarrow as pa

        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM videos ORDER BY video_id")
        return pa.Table.from_pylist([dict(zip(_COLUMNS, r)) for r in rows], schema=ledger_arrow_schema())


def dropped_arrow_schema():
    """Arrow schema of the dropped/marked clips snapshot (the DuckDB `dropped_clips` view)."""
    import pyarrow as pa

    return pa.schema([("video_id", pa.string()), ("source_uri", pa.string()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("reason", pa.string()), ("detail", pa.string()),
                      ("action", pa.string())])


def ledger_arrow_schema():
    """Arrow schema of the ledger snapshot (also used when a dataset has no ledger yet)."""
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c in ("attempts", "num_clips") else pa.string()) for c in _COLUMNS])
