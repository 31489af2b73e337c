"""build-3dhiw resumes from damage, not only from SIGKILL: real videos, real pipeline.

One clean build of three videos (one shard each); its copies are damaged (a truncated, a
flipped and a deleted shard), then `clutch verify --deep` must name all three and one
build rerun must give exactly the clean build's clip ids and arrays. A build on a full disk
must leave no video running, and a rerun with space must complete.
"""
from __future__ import annotations

import errno
import os
import shutil

import pytest

from tests.fixtures.flow_videos import make_videos
from tests.fixtures.builds import NAMES, SMALL, assert_same_rows, rows_of, states
from tests.fixtures.shards import flip, truncate

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def cli_build(out, videos) -> int:
    """`clutch build` in this process (the monkeypatched writer applies), one video per shard."""
    from clutch_cli import main

    return main(["build", *map(str, videos), "--out", str(out), "--batch-size", "1", "--workers", "1",
                 "--retries", "0", "--no-progress", *[a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]])


@pytest.fixture(scope="module")
def videos(shared_data, tmp_path_factory):
    return make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path_factory.mktemp("videos"), NAMES)


@pytest.fixture(scope="module")
def reference(prefect_harness, videos, tmp_path_factory):
    """A clean build of NAMES, one shard per video."""
    out = tmp_path_factory.mktemp("reference")
    assert cli_build(out, [videos[n] for n in NAMES]) == 0
    return out


def test_truncated_flipped_and_deleted_shards_are_named_and_one_rerun_rebuilds_them(reference, videos, tmp_path,
                                                                                    capsys):
    from clutch_cli import main

    out = tmp_path / "damaged"
    shutil.copytree(reference, out)
    a, b, c = sorted((out / "shards").glob("part-*.parquet"))
    truncate(a)
    flip(b)
    c.unlink()

    assert main(["query", str(out), "SELECT count(*) FROM clips"]) == 1
    err = capsys.readouterr().err
    assert str(a) in err and "Traceback" not in err
    assert main(["verify", str(out), "--deep"]) == 1
    report = capsys.readouterr().out.splitlines()
    for p in (a, b, c):
        assert any(p.name in line and not line.startswith("OK") for line in report), report

    assert cli_build(out, [videos[n] for n in NAMES]) == 0
    assert set(states(out).values()) == {"done"}
    assert_same_rows(rows_of(out), rows_of(reference))
    assert sorted(p.name for p in (out / "shards" / ".damaged").iterdir()) == sorted([a.name, b.name])
    assert main(["verify", str(out), "--deep"]) == 0


def test_a_build_on_a_full_disk_leaves_nothing_running_and_a_rerun_completes(prefect_harness, reference, videos,
                                                                             tmp_path, monkeypatch, capsys):
    import storage.writer as writer
    from clutch_cli import main

    out, video = tmp_path / "full", videos["kitchen_c"]
    real = writer._write_parquet

    def full_disk(path, *a, **k):  # the disk fills up while the shard is written
        with open(path, "wb") as f:
            f.write(b"PAR1" + bytes(4096))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer, "_write_parquet", full_disk)
    assert cli_build(out, [video]) == 1
    said = capsys.readouterr()
    assert "no space left on device while writing" in said.out + said.err
    assert list((out / "shards").iterdir()) == []
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "running 0" in status and "pending 1" in status and "no space left on device" in status

    monkeypatch.setattr(writer, "_write_parquet", real)
    assert cli_build(out, [video]) == 0
    want = {k: v for k, v in rows_of(reference).items() if v["source_uri"] == str(video)}
    got = rows_of(out)
    for r in want.values():
        r.pop("source_uri")
    for r in got.values():
        r.pop("source_uri")
    assert want and states(out) and set(states(out).values()) == {"done"}
    assert_same_rows(got, want)
