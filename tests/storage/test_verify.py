"""Shards and ledger never disagree in silence: each fault is named, repaired, and rebuilt exactly.

Datasets here are written by the real batch code (annotators.batch.run_batch) with a
deterministic stand-in for the annotator, so a rebuild must give the same rows.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clutch_cli import main
from storage.integrity import DamagedFileError
from storage.ledger import Ledger
from storage.resume import dataset_lock, reconcile_shards
from storage.verify import check
from storage.writer import list_shards
from tests.fixtures.shards import annotate, assert_same_rows, build, flip, make_rows, rows_of, truncate

@pytest.fixture
def clean(tmp_path) -> Path:
    d = tmp_path / "clean"
    build(d)
    return d


def test_the_ledger_records_where_each_video_lives(clean):
    led = Ledger(clean)
    shards = list_shards(clean)
    assert len(shards) == 3 and check(led, clean, deep=True).ok
    records = led.shard_records()
    for p in shards:
        assert records[p.name].bytes == p.stat().st_size and records[p.name].num_rows == 6
    for r in led.by_state():
        assert r.state == "done" and r.num_clips == 3 and len(r.clips_sha256) == 64
    assert pq.read_table(shards[0], page_checksum_verification=True).num_rows == 6


def test_truncated_flipped_and_deleted_shards_are_named_then_rebuilt_exactly(clean, tmp_path, capsys):
    import shutil

    d = tmp_path / "damaged"
    shutil.copytree(clean, d)
    a, b, c = list_shards(d)
    truncate(a)
    flip(b)
    c.unlink()
    assert main(["verify", str(d), "--deep"]) == 1
    out = capsys.readouterr().out
    for p, word in ((a, "DAMAGED"), (b, "DAMAGED"), (c, "MISSING")):
        assert any(p.name in line and line.startswith(word) for line in out.splitlines()), out
    assert main(["verify", str(d)]) == 1  # the cheap checks see all three too (b's mtime changed)
    assert sum(p.name in out for p in (a, b, c)) == 3

    assert main(["verify", str(d), "--repair"]) == 1
    capsys.readouterr()
    assert sorted(p.name for p in (d / "shards" / ".damaged").iterdir()) == sorted([a.name, b.name])
    led = Ledger(d)
    assert led.counts()["pending"] == 6 and all("the next build rebuilds it" in r.error for r in led.by_state())
    assert main(["status", str(d)]) == 0
    assert "is missing" in capsys.readouterr().out
    assert main(["verify", str(d)]) == 0  # nothing left that disagrees

    build(d)
    assert check(Ledger(d), d, deep=True).ok
    assert_same_rows(rows_of(d), rows_of(clean))


def test_a_build_repairs_damage_by_itself_and_rebuilds_only_the_lost_videos(clean, tmp_path):
    import shutil

    d = tmp_path / "damaged"
    shutil.copytree(clean, d)
    a, b, c = list_shards(d)
    truncate(a)
    seen = []

    def counting(v):
        seen.append(v.video_id)
        return annotate(v)

    build(d, counting)
    assert sorted(seen) == [r.video_id for r in Ledger(clean).by_state() if r.shard == a.name]
    assert_same_rows(rows_of(d), rows_of(clean))


def test_flipped_bytes_with_the_old_mtime_are_caught_by_deep_and_by_every_read(clean):
    from storage.reader import ClipReader

    a = list_shards(clean)[0]
    flip(a, keep_mtime=True)
    assert check(Ledger(clean), clean).ok  # the cheap checks trust an unchanged size and mtime
    report = check(Ledger(clean), clean, deep=True)
    assert [f.file for f in report.findings] == [f"shards/{a.name}"]
    with pytest.raises(DamagedFileError, match=a.name):
        ClipReader(clean).read_rows()


def test_query_names_a_truncated_shard_and_skip_damaged_queries_the_rest(clean, capsys):
    from storage.catalog import connect

    a = list_shards(clean)[0]
    truncate(a)
    assert main(["query", str(clean), "SELECT count(*) AS n FROM clips", "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert str(a) in err and "clutch verify" in err and "--repair" in err and "Traceback" not in err
    assert main(["query", str(clean), "SELECT count(*) AS n FROM clips", "--format", "csv", "--skip-damaged"]) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[1] == "12" and f"skipped damaged shard {a}" in cap.err
    with pytest.raises(DamagedFileError, match="verify"):
        connect(clean)
    con = connect(clean, skip_damaged=True)
    assert con.execute("SELECT file FROM skipped_shards").fetchall() == [(str(a),)]


def test_no_space_left_names_the_file_leaves_nothing_running_and_a_rerun_completes(clean, tmp_path, monkeypatch,
                                                                                     capsys):
    import storage.writer as writer

    d = tmp_path / "full"
    real = writer._write_parquet

    def full_disk(path, *a, **k):  # the disk fills up half way through the shard
        with open(path, "wb") as f:
            f.write(b"PAR1" + bytes(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer, "_write_parquet", full_disk)
    with pytest.raises(OSError, match=r"no space left on device while writing .*part-b[0-9a-f]+\.parquet: it needs") as e:
        build(d)
    assert e.value.errno == errno.ENOSPC
    assert list((d / "shards").iterdir()) == []  # no partial shard, no temp file
    assert main(["status", str(d)]) == 0
    out = capsys.readouterr().out
    assert "running 0" in out and "pending 6" in out and "no space left on device" in out

    monkeypatch.setattr(writer, "_write_parquet", real)
    build(d)
    assert Ledger(d).counts()["done"] == 6
    assert_same_rows(rows_of(d), rows_of(clean))


def test_running_is_shown_only_while_a_live_build_holds_the_lock(tmp_path, capsys):
    led = Ledger(tmp_path)
    led.register("v", "/videos/v.mp4", "fp")
    led.mark_running("v")
    with dataset_lock(tmp_path):  # a live build
        assert main(["status", str(tmp_path)]) == 0
        assert "running 1" in capsys.readouterr().out
    assert main(["status", str(tmp_path)]) == 0  # the build is gone (killed): its video is pending, with why
    out = capsys.readouterr().out
    assert "running 0" in out and "pending 1" in out and "interrupted" in out
    assert led.get("v").state == "pending"


def test_an_old_dataset_opens_verifies_and_gets_its_facts_recorded(clean):
    import sqlite3

    db = sqlite3.connect(clean / "ledger.sqlite")  # as a ledger written before the facts existed
    db.execute("DELETE FROM shards")
    db.execute("UPDATE videos SET num_clips = NULL, clips_sha256 = NULL")
    db.commit()
    db.close()
    led = Ledger(clean)
    report = check(led, clean)
    assert report.ok and len(report.legacy) == 3
    reconcile_shards(led, clean)
    assert len(led.shard_records()) == 3 and all(r.num_clips == 3 for r in led.by_state())


def test_an_orphaned_shard_of_unknown_videos_is_reported_and_moved_aside(clean, tmp_path, capsys):
    from storage.writer import write_shard

    rows = make_rows(2, seed=9, prefix="zz")
    for r in rows:
        r["video_id"] = "stranger"
    p = write_shard(clean, "foreign", rows)
    assert main(["verify", str(clean)]) == 1
    assert any(line.startswith("ORPHAN") and p.name in line for line in capsys.readouterr().out.splitlines())
    reconcile_shards(Ledger(clean), clean)
    assert not p.exists() and (clean / "shards" / ".damaged" / p.name).exists()
    assert check(Ledger(clean), clean).ok


def test_a_shard_of_an_older_schema_is_named_not_repaired(tmp_path):
    """A dataset written before schema version 2 (no hand_shape): every tool names the version and
    what to do; `clutch verify --repair` moves nothing (the file is whole)."""
    import pyarrow.parquet as pq

    from clutch_cli import main
    from storage.catalog import connect
    from storage.integrity import SchemaVersionError
    from storage.schema import SCHEMA_VERSION_KEY, rows_to_table
    from tests.fixtures.shards import make_rows

    d = tmp_path / "old"
    (d / "shards").mkdir(parents=True)
    t = rows_to_table(make_rows(3)).drop_columns(["hand_shape"])
    t = t.replace_schema_metadata({SCHEMA_VERSION_KEY: b"1"})
    pq.write_table(t, d / "shards" / "part-old.parquet")
    from storage.ledger import Ledger

    Ledger(d).register("v0", "/videos/v0.mp4", "fp")
    with pytest.raises(SchemaVersionError, match="schema version 1; this CLUTCH reads versions 2, 3"):
        connect(d)
    assert main(["query", str(d), "SELECT count(*) FROM clips"]) == 2
    assert main(["verify", str(d), "--repair"]) == 2
    assert (d / "shards" / "part-old.parquet").exists()


def test_a_version_2_shard_without_per_track_quality_is_still_read(tmp_path):
    import pyarrow as pa

    from storage.catalog import connect
    from storage.reader import read_rows
    from storage.schema import QUALITY_TYPE, SCHEMA_VERSION_KEY, TRACK_QUALITY_FIELDS, rows_to_table
    from tests.fixtures.shards import make_rows

    d = tmp_path / "v2"
    (d / "shards").mkdir(parents=True)
    t = rows_to_table(make_rows(3))
    q = t.column("quality").combine_chunks()
    old = pa.StructArray.from_arrays([q.field(f.name) for f in QUALITY_TYPE if f.name not in TRACK_QUALITY_FIELDS],
                                     [f.name for f in QUALITY_TYPE if f.name not in TRACK_QUALITY_FIELDS])
    t = t.set_column(t.schema.get_field_index("quality"), "quality", old)
    pq.write_table(t.replace_schema_metadata({SCHEMA_VERSION_KEY: b"2"}), d / "shards" / "part-v2.parquet")
    rows = read_rows(d)
    assert len(rows) == 3 and "reproj_track_mean_left" not in rows[0]["quality"]
    assert connect(d).execute("SELECT count(*) FROM clips WHERE quality.reproj_px_median >= 0").fetchone()[0] == 3


def test_an_orphan_shard_damaged_before_its_adoption_is_rebuilt_not_adopted(clean, tmp_path):
    """A build killed after writing a shard, before marking its videos: the next build adopts the shard, but
    only after reading all of it against its page CRCs (the ledger never recorded its sha256)."""
    import shutil

    d = tmp_path / "orphan"
    shutil.copytree(clean, d)
    a = list_shards(d)[0]
    mine = [r.video_id for r in Ledger(d).by_state() if r.shard == a.name]
    Ledger(d).requeue(mine, "killed before marking", forget_shard=a.name)  # what the kill leaves
    flip(a)  # and then its bytes go bad (a disk, a copy)
    seen = []

    def counting(v):
        seen.append(v.video_id)
        return annotate(v)

    build(d, counting)
    assert sorted(seen) == sorted(mine)
    assert_same_rows(rows_of(d), rows_of(clean))
    assert check(Ledger(d), d, deep=True).ok


def test_a_full_disk_under_the_ledger_is_one_clear_line_not_a_traceback(clean, monkeypatch, capsys):
    from storage.ledger import LedgerNoSpace

    def full(self):
        raise LedgerNoSpace(self.path, "disk I/O error", 0)

    monkeypatch.setattr(Ledger, "_connect", full)
    assert main(["verify", str(clean)]) == 1
    err = capsys.readouterr().err
    assert "clutch verify: error: no space left on device for the ledger" in err and "Traceback" not in err
