"""Atomic Parquet shard writer.

A shard is written under a temporary name that does not match `*.parquet`, flushed
and fsynced, then renamed into place and the directory fsynced. Readers globbing
`shards/*.parquet` therefore see either no shard or the whole shard, even if the
writer is killed mid-write (a truncated `.parquet` would break every DuckDB query
over the folder).

Layout choices (measured in BENCHMARKS.md, "Storage"):
- Rows are sorted by clip_id inside a shard, so row-group min/max statistics on
  clip_id let DuckDB skip every row group but one when fetching a clip by id.
- Row groups are sized by bytes, not rows: a clip is ~70-230 KB raw, so DuckDB's
  default of 122,880 rows would make one row group per shard and every single-clip
  fetch would decompress the whole shard. ROW_GROUP_BYTES keeps the read
  amplification of a random clip fetch small.
- zstd everywhere; dictionary encoding only for the string columns; statistics only
  for the scalar columns (min/max of float lists are useless and bloat the footer).
- Every data page carries a CRC32 (Parquet page checksums), verified by the project's
  readers (storage.integrity), so flipped bytes are an error, never silently wrong data.
- Every row group carries a Bloom filter on clip_id (storage.index), so a plain SQL
  `clip_id IN (...)` reads only the row groups that hold a requested clip.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.index import clip_id_bloom_options
from storage.remote import push_file
from storage.schema import CLIP_SCHEMA, rows_to_table

SHARDS_DIR = "shards"
ROW_GROUP_BYTES = 1 << 20  # raw (uncompressed) bytes per row group (~7 clips of 5.8 s); see module docstring
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
BYTE_STREAM_SPLIT = True  # float columns: -20 % bytes, faster writes, same read speed (BENCHMARKS.md)

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")
_TMP_RE = re.compile(r"^\.part-(?P<key>.+)\.parquet\.tmp-(?P<pid>\d+)-[0-9a-f]+$")
_FLOAT_LEAVES = {  # Parquet leaf paths of the float array columns
    "motion": "motion.list.element.list.element",
    "joints3d": "joints3d.list.element.list.element.list.element.list.element",
    "keypoints2d": "keypoints2d.list.element.list.element.list.element.list.element",
}
_SCALAR_COLUMNS = ["clip_id", "video_id", "source_uri", "start_s", "end_s", "fps", "num_frames", "split",
                   "pose_convention", "created_at", "fingerprint", "reader"]
_DICT_COLUMNS = ["video_id", "source_uri", "split", "pose_convention", "fingerprint", "reader",
                 "captions.list.element.source", "tracker.name", "tracker.version"]


class NoSpaceLeft(OSError):
    """ENOSPC while writing a file: says which file and how much space it needed."""

    def __init__(self, path: str | os.PathLike, needed_bytes: int):
        self.path, self.needed_bytes = Path(path), int(needed_bytes)
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = None
        self.message = (f"no space left on device while writing {self.path}: it needs up to "
                        f"{_mb(needed_bytes)} (the batch's uncompressed size; the file is smaller)"
                        + (f", {_mb(free)} free" if free is not None else "")
                        + "; free space and rerun the same command: it resumes")
        super().__init__(errno.ENOSPC, self.message, str(self.path))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"NoSpaceLeft({self.message!r})"

    def __reduce__(self):
        return NoSpaceLeft, (self.path, self.needed_bytes)


def is_enospc(e: BaseException) -> bool:
    """ENOSPC, also when a library re-raised it as a plain IOError with the text only."""
    return isinstance(e, OSError) and (e.errno == errno.ENOSPC or "No space left on device" in str(e))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def shard_path(dataset_dir: str | os.PathLike, key: str) -> Path:
    """Final path of shard `key`: DATASET/shards/part-<key>.parquet."""
    if not _KEY_RE.match(key):
        raise ValueError(f"shard key {key!r}: use letters, digits, '_', '-', '.', '=' (max 200 chars)")
    return Path(dataset_dir) / SHARDS_DIR / f"part-{key}.parquet"


def write_shard(
    dataset_dir: str | os.PathLike,
    key: str,
    rows: Iterable[Mapping[str, Any]] | None = None,
    *,
    table: pa.Table | None = None,
    row_group_bytes: int = ROW_GROUP_BYTES,
    byte_stream_split: bool = BYTE_STREAM_SPLIT,
    compression_level: int = COMPRESSION_LEVEL,
    clip_id_bloom: bool = True,
) -> Path:
    """Validate rows (or a CLIP_SCHEMA table) and write them atomically as shard `key`.

    Overwrites an existing shard with the same key (a rerun of the same batch).
    Raises storage.schema.RowValidationError naming the clip and field of a bad row.
    `clip_id_bloom=False` leaves out the clip_id Bloom filters (only to measure what they save).
    """
    final = shard_path(dataset_dir, key)
    if (rows is None) == (table is None):
        raise TypeError("write_shard: pass exactly one of rows or table")
    if table is None:
        table = rows_to_table(list(rows))
    elif not table.schema.equals(CLIP_SCHEMA, check_metadata=False):
        raise ValueError(f"shard {key!r}: table schema differs from storage.schema.CLIP_SCHEMA")
    table = table.replace_schema_metadata(CLIP_SCHEMA.metadata)
    if table.num_rows == 0:
        raise ValueError(f"shard {key!r}: no rows to write")
    table = table.take(pc.sort_indices(table, [("clip_id", "ascending")]))

    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final.parent)
    tmp = final.parent / f".part-{key}.parquet.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _write_parquet(tmp, table, row_group_bytes, byte_stream_split, compression_level, clip_id_bloom)
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if is_enospc(e) and not isinstance(e, NoSpaceLeft):
            raise NoSpaceLeft(final, table.nbytes) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    push_file(dataset_dir, final)  # a dataset bound to a store URL: upload it (storage.remote)
    return final


def rows_per_group(table: pa.Table, row_group_bytes: int) -> int:
    """Rows per row group so a group holds about `row_group_bytes` of raw data."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    return max(1, int(row_group_bytes // per_row))


def _write_parquet(path: Path, table: pa.Table, row_group_bytes: int, bss: bool, level: int,
                   bloom: bool = True) -> None:
    leaves = list(_FLOAT_LEAVES.values())
    group = rows_per_group(table, row_group_bytes)
    with open(path, "wb") as fh:
        with pq.ParquetWriter(
            fh,
            CLIP_SCHEMA,
            compression=COMPRESSION,
            compression_level=level,
            use_dictionary=_DICT_COLUMNS,
            write_statistics=_SCALAR_COLUMNS,
            use_byte_stream_split=leaves if bss else False,
            store_schema=True,
            write_page_checksum=True,
            bloom_filter_options=clip_id_bloom_options(group) if bloom else None,
        ) as w:
            w.write_table(table, row_group_size=group)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(shards_dir: str | os.PathLike) -> list[Path]:
    """Remove temp files whose writer process is gone (killed mid-write); return them.

    Temp files never match `*.parquet`, so readers ignore them even before cleanup.
    The pid test assumes writers run on this host; on storage shared between hosts a
    leftover temp may stay until a writer on its host runs, and is harmless.
    """
    removed = []
    d = Path(shards_dir)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _TMP_RE.match(p.name)
        if not m:
            continue
        if not _pid_alive(int(m["pid"])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def list_shards(dataset_dir: str | os.PathLike) -> list[Path]:
    """Complete shards of a dataset, sorted by name."""
    return sorted((Path(dataset_dir) / SHARDS_DIR).glob("part-*.parquet"))
