"""Shard writer: round trip, validation, byte-sized row groups, atomicity under SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from storage.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, RowValidationError, table_to_rows
from storage.writer import clean_stale_temps, list_shards, write_shard
from tests.fixtures.shards import MAKE_ROWS, make_rows

REPO = Path(__file__).resolve().parents[2]


def count(dataset: Path) -> int:
    return duckdb.sql(f"SELECT count(*) FROM '{dataset}/shards/*.parquet'").fetchall()[0][0]


def test_round_trip_sorted_and_versioned(tmp_path):
    rows = make_rows(30, seed=1)[::-1]  # written out of order
    path = write_shard(tmp_path, "b0", rows)
    assert path == tmp_path / "shards" / "part-b0.parquet"
    assert list_shards(tmp_path) == [path]
    f = pq.ParquetFile(path)
    assert f.schema_arrow.metadata[SCHEMA_VERSION_KEY] == SCHEMA_VERSION.encode()
    assert f.metadata.row_group(0).column(0).compression == "ZSTD"
    back = table_to_rows(f.read())
    assert [r["clip_id"] for r in back] == sorted(r["clip_id"] for r in rows)
    by_id = {r["clip_id"]: r for r in rows}
    for r in back:
        src = by_id[r["clip_id"]]
        np.testing.assert_array_equal(r["motion"], src["motion"])
        np.testing.assert_array_equal(r["presence"], src["presence"])
        np.testing.assert_array_equal(r["keypoints2d"], src["keypoints2d"])  # NaN where absent, compared equal
        assert r["captions"] == src["captions"]
    assert count(tmp_path) == 30


def test_row_groups_sized_by_bytes(tmp_path):
    rows = make_rows(40, seed=2, frames=144)  # ~235 KB raw each
    f = pq.ParquetFile(write_shard(tmp_path, "rg", rows, row_group_bytes=1 << 20))
    sizes = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
    assert sizes[0] == 4 and sum(sizes) == 40  # 1 MiB / ~235 KB per row
    f = pq.ParquetFile(write_shard(tmp_path, "rg", rows, row_group_bytes=64 << 20))
    assert f.num_row_groups == 1


def test_bad_row_is_rejected_naming_clip_and_field(tmp_path):
    rows = make_rows(3)
    rows[1]["motion"] = rows[1]["motion"][:, :197]
    with pytest.raises(RowValidationError, match=r"c00001.*motion"):
        write_shard(tmp_path, "bad", rows)
    assert list_shards(tmp_path) == []
    assert not (tmp_path / "shards").exists()  # validated before anything touches the disk
    with pytest.raises(ValueError, match="shard key"):
        write_shard(tmp_path, "../escape", make_rows(1))


def test_byte_stream_split_is_switchable_and_duckdb_reads_it(tmp_path):
    rows = make_rows(5, seed=3)
    for bss in (True, False):
        path = write_shard(tmp_path / str(bss), "bss", rows, byte_stream_split=bss)
        encodings = pq.ParquetFile(path).metadata.row_group(0).column(8).encodings  # motion leaf
        assert ("BYTE_STREAM_SPLIT" in encodings) == bss
        got = duckdb.sql(f"SELECT motion FROM '{path}' WHERE clip_id = 'c00002'").fetchall()[0][0]
        np.testing.assert_array_equal(np.array(got, dtype=np.float32), rows[2]["motion"])


CHILD = MAKE_ROWS + textwrap.dedent('''
    import sys
    from storage.writer import write_shard
    rows = make_rows(int(sys.argv[2]), seed=5, frames=144, prefix="big")
    print("writing", flush=True)
    write_shard(sys.argv[1], "big", rows)
    print("done", flush=True)
''')


@pytest.mark.slow
def test_sigkill_mid_write_never_exposes_a_partial_shard(tmp_path):
    write_shard(tmp_path, "small", make_rows(7, seed=9))
    n_big = 250  # ~60 MB raw: a second or more to compress and write
    killed = 0
    for delay in (0.0, 0.2, 0.6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(n_big)], cwd=REPO,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 60
        while not list((tmp_path / "shards").glob(f".part-big.parquet.tmp-{child.pid}-*")):  # the write began
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        n = count(tmp_path)  # DuckDB over the glob still works
        big = tmp_path / "shards" / "part-big.parquet"
        assert n == 7 + (n_big if big.exists() else 0)  # all or nothing
        if big.exists():  # the writer finished before the kill: start the next round clean
            big.unlink()
        else:  # its temp file is left (until a later writer cleans it), under a name no reader globs
            killed += 1
            temps = list((tmp_path / "shards").glob(f".part-big.parquet.tmp-{child.pid}-*"))
            assert temps and not any(p.name.endswith(".parquet") for p in temps)
    assert killed >= 1, "no kill landed mid-write; the shard is too small for this machine"
    write_shard(tmp_path, "big", make_rows(n_big, seed=5, frames=144, prefix="big"))  # rerun writes it whole
    assert count(tmp_path) == 7 + n_big
    assert not [p for p in (tmp_path / "shards").iterdir() if ".tmp-" in p.name]  # stale temps cleaned


def test_clean_stale_temps_keeps_live_writers(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    live = d / f".part-x.parquet.tmp-{os.getpid()}-abcd"
    dead = d / ".part-y.parquet.tmp-999999999-abcd"
    live.write_bytes(b"x")
    dead.write_bytes(b"x")
    assert clean_stale_temps(d) == [dead]
    assert live.exists()
