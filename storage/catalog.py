"""DuckDB views over a dataset folder: clips, captions, ledger.

The shards are ordinary Parquet files: `duckdb.sql("FROM 'DATASET/shards/*.parquet'")`
works without this module. `connect` adds the conveniences: a `captions` view with one
row per caption, a snapshot of the SQLite ledger, and a typed empty `clips` view when a
dataset has no shard yet (a glob that matches nothing is an error in DuckDB).
"""
from __future__ import annotations

import os
from pathlib import Path

from storage.ledger import LEDGER_FILE, Ledger, ledger_arrow_schema
from storage.schema import CLIP_SCHEMA
from storage.writer import SHARDS_DIR, list_shards


def shards_glob(dataset_dir: str | os.PathLike) -> str:
    return str(Path(dataset_dir) / SHARDS_DIR / "part-*.parquet")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(dataset_dir: str | os.PathLike, database: str = ":memory:"):
    """A DuckDB connection with views `clips`, `captions` and `ledger` over DATASET.

    `clips` re-reads the shard glob at every query, so shards written after connect
    are seen; only a dataset with no shard at connect time gets a fixed empty view.
    `ledger` is a snapshot taken at connect time.
    """
    import duckdb

    d = Path(dataset_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"dataset folder {d} does not exist")
    con = duckdb.connect(database)
    con.execute("SET parquet_metadata_cache = true")  # footers are re-read by every query otherwise
    if list_shards(d):
        con.execute(f"CREATE VIEW clips AS SELECT * FROM read_parquet({_sql_str(shards_glob(d))})")
    else:
        con.register("_clips_empty", CLIP_SCHEMA.empty_table())
        con.execute("CREATE VIEW clips AS SELECT * FROM _clips_empty")
    con.execute(
        "CREATE VIEW captions AS SELECT clip_id, video_id, split, c.source AS source, c.text AS text "
        "FROM (SELECT clip_id, video_id, split, unnest(captions) AS c FROM clips)")
    ledger = Ledger(d).to_arrow() if (d / LEDGER_FILE).exists() else ledger_arrow_schema().empty_table()
    con.register("ledger", ledger)
    return con
