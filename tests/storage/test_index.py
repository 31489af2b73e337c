"""Plain SQL by clip id reads only the row groups that hold the ids, and returns exactly what a full scan does.

The clip_id Bloom filters written with every shard (storage.index) let DuckDB skip row groups
whose min/max range contains a requested id but that do not hold it. The reference here is the
same query on a hash of the id (`md5(clip_id) IN (...)`), which no Parquet statistic or filter can
answer (only a row group with a single clip_id value is decided from its statistics), so DuckDB
reads every other row group.
"""
from __future__ import annotations

import hashlib
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotators.batch import Progress, run_batch
from clutch_cli import main
from storage.catalog import connect
from storage.index import row_groups_scanned, unindexed_shards
from storage.integrity import DamagedFileError
from storage.ledger import Ledger
from storage.resume import dataset_lock, plan_batches, reconcile_shards
from storage.schema import table_to_rows
from storage.writer import list_shards, write_shard
from tests.fixtures.shards import VIDEOS, annotate, assert_same_rows, truncate


def all_ids(d) -> list[str]:
    """Every clip id of a dataset, read with pyarrow (no DuckDB, no index)."""
    return sorted(pa.concat_tables([pq.read_table(p, columns=["clip_id"]) for p in list_shards(d)])
                  .column("clip_id").to_pylist())


def by_ids(con, ids: list[str], scan: bool = False):
    """(rows as Arrow, (row groups read, row groups in all)) for `clips WHERE clip_id IN (ids)`."""
    marks = ", ".join("?" * len(ids))
    where = f"md5(clip_id) IN ({marks})" if scan else f"clip_id IN ({marks})"
    sql = f"SELECT * FROM clips WHERE {where} ORDER BY clip_id"
    params = [hashlib.md5(i.encode()).hexdigest() for i in ids] if scan else ids
    return con.sql(sql, params=params).to_arrow_table(), row_groups_scanned(con, sql, params)


def assert_same_table(a: pa.Table, b: pa.Table) -> None:
    """Same schema, same rows in the same order; NaN (absent keypoints) equals NaN."""
    assert a.schema == b.schema and a.column("clip_id").to_pylist() == b.column("clip_id").to_pylist()
    assert_same_rows({r["clip_id"]: r for r in table_to_rows(a)}, {r["clip_id"]: r for r in table_to_rows(b)})


def assert_same_as_scan(con, ids: list[str]) -> tuple[int, int]:
    got, (read, total) = by_ids(con, ids)
    ref, (ref_read, ref_total) = by_ids(con, ids, scan=True)
    assert ref_total == total and read <= ref_read >= total - 2  # the reference reads (nearly) everything
    assert_same_table(got, ref)
    assert got.column("clip_id").to_pylist() == sorted(set(ids) & set(got.column("clip_id").to_pylist()))
    return read, total


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("index") / "D"
    assert main(["synth", "--out", str(d), "--clips", "120", "--seed", "5", "--clips-per-shard", "30"]) == 0
    return d


def groups_holding(d, ids: list[str]) -> int:
    """How many (shard, row group) pairs hold at least one of `ids`, from the files themselves."""
    n = 0
    for p in list_shards(d):
        f = pq.ParquetFile(p)
        for g in range(f.num_row_groups):
            n += bool(set(f.read_row_group(g, columns=["clip_id"]).column("clip_id").to_pylist()) & set(ids))
    return n


def test_id_queries_read_only_the_row_groups_holding_the_ids(dataset):
    ids = all_ids(dataset)
    assert len(list_shards(dataset)) >= 4 and unindexed_shards(dataset) == []
    con = connect(dataset)
    rng = random.Random(0)
    for k in (1, 3, 12):
        want = rng.sample(ids, k)
        read, total = assert_same_as_scan(con, want + ["not-a-clip"])
        assert read == groups_holding(dataset, want) < total
    want = rng.sample(ids, 5)
    literal = con.sql(f"SELECT clip_id, motion FROM clips WHERE clip_id IN ({', '.join(map(repr, want))}) "
                      "ORDER BY clip_id").to_arrow_table()
    listed = con.sql("SELECT clip_id, motion FROM clips WHERE list_contains(?, clip_id) ORDER BY clip_id",
                     params=[want]).to_arrow_table()
    assert_same_table(literal, listed)
    assert literal.column("clip_id").to_pylist() == sorted(want)
    assert by_ids(con, ["not-a-clip"])[0].num_rows == 0


def test_shards_without_the_filters_give_the_same_rows_but_read_more(dataset, tmp_path):
    plain = tmp_path / "plain"
    for p in list_shards(dataset):
        write_shard(plain, p.stem.removeprefix("part-"), table=pq.read_table(p), clip_id_bloom=False)
    assert [p.name for p in unindexed_shards(plain)] == [p.name for p in list_shards(dataset)]
    want = random.Random(1).sample(all_ids(dataset), 6)
    got, (read, _) = by_ids(connect(dataset), want)
    old, (old_read, _) = by_ids(connect(plain), want)
    assert_same_table(got, old)
    assert got.num_rows == 6
    assert read < old_read


def build(d, videos) -> None:
    """What build-3dhiw does, minus Prefect (as in test_storage_verify): register, reconcile, plan, run."""
    ledger = Ledger(d)
    for v in videos:
        ledger.register(v.video_id, v.path, "fp")
    with dataset_lock(d):
        reconcile_shards(ledger, d)
        plan = plan_batches(ledger, [v.video_id for v in videos], 2)
        by_id = {v.video_id: v for v in videos}
        for batch in plan.batches:
            run_batch(d, [by_id[i] for i in batch], annotate, Progress())


def test_same_rows_after_a_second_build_and_after_a_repair(tmp_path):
    d = tmp_path / "D"
    build(d, VIDEOS[:4])
    early = connect(d)  # opened before the second build: the view re-globs the shards
    first = all_ids(d)
    assert len(list_shards(d)) == 2 and len(first) == 12
    assert_same_as_scan(early, first[::3])

    build(d, VIDEOS)  # the second build adds a shard
    ids = all_ids(d)
    added = sorted(set(ids) - set(first))
    assert len(list_shards(d)) == 3 and len(added) == 6 and unindexed_shards(d) == []
    for con in (early, connect(d)):
        assert_same_as_scan(con, added[:2] + first[:2] + ["not-a-clip"])
        assert by_ids(con, added)[0].column("clip_id").to_pylist() == added

    damaged = list_shards(d)[0]
    lost = set(pq.read_table(damaged, columns=["clip_id"]).column("clip_id").to_pylist())
    truncate(damaged)
    with pytest.raises(DamagedFileError):
        connect(d)
    skipping = connect(d, skip_damaged=True)  # the fixed list of good shards is pruned the same way
    read, _ = assert_same_as_scan(skipping, ids)
    assert by_ids(skipping, ids)[0].num_rows == len(ids) - len(lost) and read >= 1

    build(d, VIDEOS)  # moves the damaged shard aside and rebuilds its videos
    assert all_ids(d) == ids and unindexed_shards(d) == []
    for con in (connect(d),):
        assert_same_as_scan(con, sorted(lost) + added[:1])
        assert by_ids(con, sorted(lost))[0].column("clip_id").to_pylist() == sorted(lost)
