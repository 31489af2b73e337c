"""What a shard is, in numbers the ledger can keep: size, checksum, rows, clip ids per video.

Why: a shard damaged after the build (a copy cut short, a bad disk, a deleted file) must be
noticed, and its videos rebuilt. The ledger stores these facts in the transaction that marks
the videos done; storage.verify compares them with the files. Also the one place that opens
a Parquet file "carefully": footer and schema first, page CRCs verified on read, and every
failure turned into DamagedFileError naming the file and the command that repairs it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from storage.schema import READABLE_VERSIONS, SCHEMA_VERSION, SCHEMA_VERSION_KEY

HASH_CHUNK = 1 << 20


class DamagedFileError(RuntimeError):
    """A Parquet file (shard or tokens part) that cannot be read as written."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{self.path}: {problem}. {fix}")


class SchemaVersionError(ValueError):
    """A whole, readable shard written with another clip-schema version: not damage, nothing to
    repair; the dataset has to be rebuilt (or read with the release that wrote it)."""

    def __init__(self, path: str | os.PathLike, version: str):
        self.path, self.version = Path(path), version
        super().__init__(
            f"{self.path}: written with clip schema version {version}; this CLUTCH reads versions {', '.join(READABLE_VERSIONS)} "
            "(storage/schema.py lists what changed). Build the videos again into a new dataset folder "
            "(`clutch build VIDEOS --out NEW`); DuckDB and pyarrow still read this file as it is")


def repair_hint(dataset_dir: str | os.PathLike) -> str:
    """The command that repairs a dataset's shards (then a build rebuilds the lost videos)."""
    return (f"Run `clutch verify {dataset_dir} --repair` (moves damaged shards to shards/.damaged/ and sets "
            "their videos back to pending), then rerun `clutch build` to rebuild them")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def clips_digest(clip_ids: Iterable[str]) -> str:
    """sha256 of a video's sorted clip ids (one per line): equal digests, equal clip sets."""
    return hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest()


@dataclass(frozen=True)
class VideoClips:
    num_clips: int
    clips_sha256: str


@dataclass(frozen=True)
class ShardFile:
    """What identifies a shard file's bytes: name, rows, size, checksum, modification time."""

    name: str
    num_rows: int
    bytes: int
    sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class ShardFacts(ShardFile):
    """One shard file as written, and each video's clips in it (what the ledger records)."""

    videos: dict[str, VideoClips]


def open_parquet(path: str | os.PathLike, fix: str, columns: Sequence[str] | None = None) -> pq.ParquetFile:
    """Open a Parquet file, parse its footer and check its columns; DamagedFileError if not readable.

    Page CRCs (written by storage.writer) are verified by every read through the returned file.
    """
    try:
        f = pq.ParquetFile(path, page_checksum_verification=True)
    except FileNotFoundError:
        raise DamagedFileError(path, "the file is missing", fix) from None
    except (OSError, pa.ArrowException) as e:  # truncated, not Parquet, unreadable footer
        raise DamagedFileError(path, f"not a readable Parquet file ({_short(e)})", fix) from None
    if columns is not None and f.schema_arrow.names != list(columns):
        version = (f.schema_arrow.metadata or {}).get(SCHEMA_VERSION_KEY, b"").decode()
        if version and version not in READABLE_VERSIONS:
            raise SchemaVersionError(path, version)
        raise DamagedFileError(path, f"columns {f.schema_arrow.names} differ from the expected {list(columns)}",
                               fix)
    return f


def read_verified(f: pq.ParquetFile, path: str | os.PathLike, fix: str, columns: Sequence[str] | None = None,
                  row_groups: Sequence[int] | None = None) -> pa.Table:
    """Read columns (of some row groups) with page CRCs checked; DamagedFileError on a bad page."""
    try:
        if row_groups is None:
            return f.read(columns=columns, use_threads=False)
        return f.read_row_groups(list(row_groups), columns=columns, use_threads=False)
    except (OSError, pa.ArrowException) as e:
        raise DamagedFileError(path, f"damaged data pages ({_short(e)})", fix) from None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def shard_facts(path: str | os.PathLike, fix: str = "") -> ShardFacts:
    """Facts of a complete shard, read back from the file (the footer and the two id columns)."""
    p = Path(path)
    f = open_parquet(p, fix)
    t = read_verified(f, p, fix, columns=["video_id", "clip_id"])
    per_video: dict[str, list[str]] = {}
    for v, c in zip(t.column("video_id").to_pylist(), t.column("clip_id").to_pylist()):
        per_video.setdefault(v, []).append(c)
    st = p.stat()
    return ShardFacts(p.name, t.num_rows, st.st_size, file_sha256(p), st.st_mtime_ns,
                      {v: VideoClips(len(c), clips_digest(c)) for v, c in per_video.items()})
