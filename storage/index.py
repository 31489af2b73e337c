"""Per-row-group clip_id Bloom filters: the index that lets plain SQL fetch clips by id fast.

Why: shards are sorted by clip_id, but each shard holds the clips of one build batch, and clip
ids are hashes, so every shard's ids span the whole id space. A row group's clip_id min/max
therefore covers ~1/150 of it, and a query for 512 random ids finds one of them inside the
min/max range of most row groups (about 3,400 of 4,700 at 32,000 clips), although only ~490
groups hold one. DuckDB has to decode the motion of every group it cannot rule out.

A Bloom filter on clip_id per row group (a few dozen bytes each) answers "is this id in that
group?" with no false negative and a small false-positive rate. DuckDB consults it for
`clip_id = ...`, `clip_id IN (...)` (constants or parameters) and `list_contains(?, clip_id)`, so
the `clips` view of storage.catalog reads only the row groups that hold a requested clip. A join
against a table of ids (or `IN (SELECT ...)`) is not pruned this way; write the list out.

storage.writer writes the filters; shards written before it lack them and are still read
correctly, only without this pruning (`unindexed_shards` lists them).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

CLIP_ID_FPP = 0.01  # false-positive rate per row group; the filter's minimum size (32 bytes) gives less
_SCANNED_RE = re.compile(r"Row Groups Scanned:\s*([\d,]+)\s*/\s*([\d,]+)")


def clip_id_bloom_options(rows_per_group: int) -> dict:
    """pyarrow `bloom_filter_options` for a shard whose row groups hold `rows_per_group` clips."""
    return {"clip_id": {"ndv": max(1, int(rows_per_group)), "fpp": CLIP_ID_FPP}}


def has_clip_index(metadata) -> bool:
    """True when every row group of a shard (pyarrow FileMetaData) carries a clip_id Bloom filter."""
    col = metadata.schema.names.index("clip_id")
    groups = [metadata.row_group(i).column(col) for i in range(metadata.num_row_groups)]
    return all((c.bloom_filter_offset or 0) > 0 for c in groups)


def unindexed_shards(dataset_dir: str | os.PathLike) -> list[Path]:
    """Shards of a local dataset without clip_id Bloom filters (written before them): id queries
    on those scan every row group whose min/max range contains a requested id."""
    import pyarrow.parquet as pq

    from storage.writer import list_shards

    return [p for p in list_shards(dataset_dir) if not has_clip_index(pq.read_metadata(p))]


def row_groups_scanned(con, sql: str, params=None) -> tuple[int, int]:
    """(row groups read, row groups in the scanned files) of a query on a DuckDB connection, from
    EXPLAIN ANALYZE (summed over the query's Parquet scans): shows whether an id query is pruned."""
    plan = "\n".join(str(r[-1]) for r in con.execute("EXPLAIN ANALYZE " + sql, params).fetchall())
    hits = [(int(a.replace(",", "")), int(b.replace(",", ""))) for a, b in _SCANNED_RE.findall(plan)]
    if not hits:
        raise ValueError("no Parquet scan in the plan of: " + sql[:200])
    return sum(a for a, _ in hits), sum(b for _, b in hits)
