"""DuckDB views over a dataset folder: clips, captions, ledger.

The shards are ordinary Parquet files: `duckdb.sql("FROM 'DATASET/shards/*.parquet'")`
works without this module. `connect` adds the conveniences: a `captions` view with one
row per caption, a snapshot of the SQLite ledger, and a typed empty `clips` view when a
dataset has no shard yet (a glob that matches nothing is an error in DuckDB).

A damaged shard (footer unreadable, size not the ledger's) is found at connect time and
named in storage.integrity.DamagedFileError, with the command that repairs it, instead of
a DuckDB error deep inside a query. `skip_damaged=True` leaves such shards out and lists
them in the table `skipped_shards` (file, problem).

Plain SQL by id (`WHERE clip_id IN (...)`) on `clips` reads only the row groups that hold the
ids: DuckDB checks the clip_id Bloom filter each row group carries (storage.index).
"""
from __future__ import annotations

import os
from pathlib import Path

import logging

from storage.integrity import DamagedFileError
from storage.ledger import LEDGER_FILE, Ledger, dropped_arrow_schema, ledger_arrow_schema
from storage.schema import CLIP_SCHEMA
from storage.writer import SHARDS_DIR, list_shards

log = logging.getLogger(__name__)


def shards_glob(dataset_dir: str | os.PathLike) -> str:
    return str(Path(dataset_dir) / SHARDS_DIR / "part-*.parquet")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def fetch_clips(con, dataset_dir: str | os.PathLike, clip_ids: list[str], columns: list[str] | None = None):
    """Clips by id as an Arrow table, with DuckDB, reading only the shards that hold them.

    A plain `SELECT * FROM clips WHERE clip_id = ?` is correct but DuckDB pays a little for
    every row group of every shard (and every projected column), even the ones its min/max
    statistics skip; at 32,000 clips that is most of a second (BENCHMARKS.md, "Storage").
    This keeps a temp table `clip_files` (clip_id -> shard file, rebuilt when the shards
    change) and then scans only the shards named there. Shards with clip_id Bloom filters
    (storage.index) make plain `clip_id IN (...)` SQL on the views fast too.
    """
    shards = [str(p) for p in list_shards(dataset_dir)]
    known = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'clip_files'").fetchall()[0][0]
    if not known or sorted(r[0] for r in con.execute("SELECT DISTINCT filename FROM clip_files").fetchall()) != shards:
        con.execute(f"CREATE OR REPLACE TEMP TABLE clip_files AS SELECT clip_id, filename "
                    f"FROM read_parquet({_sql_str(shards_glob(dataset_dir))}, filename = true)")
    ids = list(clip_ids)
    marks = ", ".join("?" * len(ids))  # an IN list of constants is pushed down to row-group statistics
    files = [r[0] for r in con.execute(f"SELECT DISTINCT filename FROM clip_files WHERE clip_id IN ({marks})",
                                       ids).fetchall()]
    cols = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
    if not files:
        return con.sql(f"SELECT {cols} FROM clips LIMIT 0").to_arrow_table()
    return con.sql(f"SELECT {cols} FROM read_parquet({[str(f) for f in files]}) WHERE clip_id IN ({marks})",
                   params=ids).to_arrow_table()


def connect(dataset_dir: str | os.PathLike, database: str = ":memory:", skip_damaged: bool = False):
    """A DuckDB connection with views `clips`, `captions`, `ledger` and `dropped_clips` over DATASET.

    `clips` re-reads the shard glob at every query, so shards written after connect
    are seen; only a dataset with no shard at connect time gets a fixed empty view.
    `ledger` and `dropped_clips` (the clips the build's filters dropped or marked, with reason,
    detail and action) are snapshots taken at connect time. DATASET may be a store URL (s3://bucket/ds,
    see storage.remote): the shards are then read there. A damaged shard raises DamagedFileError
    (naming it and the repair command), or with `skip_damaged` is left out: `clips` is
    then the fixed list of good shards, and table `skipped_shards` says what was left out.
    """
    import duckdb
    import pyarrow as pa

    from storage.remote import is_url
    from storage.verify import unreadable_shards

    if is_url(dataset_dir):
        return _connect_url(str(dataset_dir), database)
    d = Path(dataset_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"dataset folder {d} does not exist")
    damaged = unreadable_shards(d)
    if damaged and not skip_damaged:
        first, more = damaged[0], [str(e.path) for e in damaged[1:]]
        raise DamagedFileError(first.path, first.problem + (f" (also damaged: {', '.join(more)})" if more else ""),
                               first.fix)
    con = duckdb.connect(database)
    con.execute("SET parquet_metadata_cache = true")  # footers are re-read by every query otherwise
    con.register("skipped_shards", pa.table({"file": [str(e.path) for e in damaged],
                                             "problem": [e.problem for e in damaged]},
                                            schema=pa.schema([("file", pa.string()), ("problem", pa.string())])))
    good = [str(p) for p in list_shards(d) if p not in {e.path for e in damaged}]
    if damaged:
        log.warning("skipped %d damaged shard(s): %s", len(damaged), ", ".join(str(e.path) for e in damaged))
    if good and damaged:
        con.execute(f"CREATE VIEW clips AS SELECT * FROM read_parquet([{', '.join(map(_sql_str, good))}])")
    elif good:
        con.execute(f"CREATE VIEW clips AS SELECT * FROM read_parquet({_sql_str(shards_glob(d))})")
    else:
        con.register("_clips_empty", CLIP_SCHEMA.empty_table())
        con.execute("CREATE VIEW clips AS SELECT * FROM _clips_empty")
    led = Ledger(d) if (d / LEDGER_FILE).exists() else None
    return _common_views(con, ledger_arrow_schema().empty_table() if led is None else led.to_arrow(),
                         dropped_arrow_schema().empty_table() if led is None else led.dropped_arrow())


def _common_views(con, ledger, dropped=None):
    """The views every dataset connection has besides `clips`: captions, ledger, dropped_clips."""
    con.execute(
        "CREATE VIEW captions AS SELECT clip_id, video_id, split, c.source AS source, c.text AS text "
        "FROM (SELECT clip_id, video_id, split, unnest(captions) AS c FROM clips)")
    con.register("ledger", ledger)
    con.register("dropped_clips", dropped_arrow_schema().empty_table() if dropped is None else dropped)
    return con


def _connect_url(url: str, database: str):
    """`connect` for a dataset at a store URL: DuckDB reads the shards there through the fsspec
    filesystem registered with it; `ledger` is the store's ledger snapshot. Damaged shards are
    not looked for here (that reads every footer over the network): `clutch verify` works on
    the local cache folder (storage.remote)."""
    import duckdb
    import pyarrow as pa

    from storage import remote

    url = url.rstrip("/")
    fs, root = remote.filesystem(url)
    if not fs.exists(root):
        raise FileNotFoundError(f"dataset {url} does not exist")
    con = duckdb.connect(database)
    con.register_filesystem(fs)
    con.execute("SET parquet_metadata_cache = true")
    con.register("skipped_shards", pa.table({"file": [], "problem": []},
                                            schema=pa.schema([("file", pa.string()), ("problem", pa.string())])))
    if remote.shard_keys(url):
        con.execute(f"CREATE VIEW clips AS SELECT * FROM read_parquet({_sql_str(remote.join(url, SHARDS_DIR, 'part-*.parquet'))})")
    else:
        con.register("_clips_empty", CLIP_SCHEMA.empty_table())
        con.execute("CREATE VIEW clips AS SELECT * FROM _clips_empty")
    return _common_views(con, remote.read_ledger_snapshot(url))
