"""Catalog views, the clip reader and the dataset commands (query, status, card)."""
import json

import numpy as np
import pytest

from clutch_cli import main
from storage.catalog import connect
from storage.ledger import Ledger
from storage.reader import ClipReader, load_batch, read_rows
from storage.schema import table_to_rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("reader") / "D"
    assert main(["synth", "--out", str(d), "--clips", "60", "--seed", "3", "--clips-per-shard", "20"]) == 0
    return d


def test_catalog_views(dataset):
    con = connect(dataset)
    n_clips, n_caps = con.execute("SELECT count(*), sum(len(captions)) FROM clips").fetchall()[0]
    assert n_clips == 60
    assert con.execute("SELECT count(*) FROM captions").fetchall()[0][0] == n_caps
    assert con.execute("SELECT DISTINCT source FROM captions").fetchall() == [("synthetic",)]
    cols = [d[0] for d in con.execute("SELECT * FROM captions LIMIT 1").description]
    assert cols == ["clip_id", "video_id", "split", "source", "text"]
    n_videos = con.execute("SELECT count(DISTINCT video_id) FROM clips").fetchall()[0][0]
    assert con.execute("SELECT count(*), min(state), max(state) FROM ledger").fetchall()[0] == (n_videos, "done", "done")
    shards = {r[0] for r in con.execute("SELECT DISTINCT shard FROM ledger").fetchall()}
    assert shards == {p.name for p in (dataset / "shards").glob("*.parquet")}


def test_dropped_and_marked_clips_are_listed(dataset, tmp_path):
    import shutil

    d = tmp_path / "D"
    shutil.copytree(dataset, d)
    vid = connect(d).execute("SELECT min(video_id) FROM clips").fetchone()[0]
    Ledger(d).record_dropped(vid, [(0.0, 1.5, "wrist_depth_jump_p95", "wrist_depth_jump_p95 4.1 > 3 cm"),
                                   (4.0, 6.0, "reproj_px_median", "reproj_px_median 31.0 > 22.0 px", "marked")])
    rows = connect(d).execute("SELECT video_id, start_s, end_s, reason, action FROM dropped_clips "
                              "ORDER BY start_s").fetchall()
    assert rows == [(vid, 0.0, 1.5, "wrist_depth_jump_p95", "dropped"), (vid, 4.0, 6.0, "reproj_px_median", "marked")]
    assert connect(d).execute("SELECT source_uri FROM dropped_clips LIMIT 1").fetchone()[0].startswith("synthetic://")
    with pytest.raises(ValueError, match="action must be one of"):
        Ledger(d).record_dropped(vid, [(0.0, 1.0, "x", None, "hidden")])


def test_catalog_with_zero_shards(tmp_path):
    con = connect(tmp_path)
    assert con.execute("SELECT count(*) FROM clips").fetchall()[0] == (0,)
    assert con.execute("SELECT count(*) FROM captions").fetchall()[0] == (0,)
    assert con.execute("SELECT count(*) FROM ledger").fetchall()[0] == (0,)
    assert con.execute("SELECT count(*) FROM dropped_clips").fetchall()[0] == (0,)
    with pytest.raises(FileNotFoundError):
        connect(tmp_path / "missing")


def test_reader_by_ids_split_and_columns(dataset):
    r = ClipReader(dataset)
    ids = r.clip_ids()
    assert len(ids) == len(set(ids)) == 60
    want = [ids[50], ids[3], ids[27]]  # across shards, out of order
    rows = r.read_rows(want)
    assert [x["clip_id"] for x in rows] == want
    ref = {x["clip_id"]: x for x in table_to_rows(connect(dataset).sql(  # DuckDB returns plain nested lists
        f"SELECT * FROM clips WHERE clip_id IN {tuple(want)}").to_arrow_table())}
    for x in rows:
        np.testing.assert_array_equal(x["motion"], ref[x["clip_id"]]["motion"])
        assert x["captions"] == ref[x["clip_id"]]["captions"]
    val = r.read_rows(split="val", columns=["clip_id", "split", "num_frames"])
    assert val and {x["split"] for x in val} == {"val"} and set(val[0]) == {"clip_id", "split", "num_frames"}
    assert len(val) == len(r.clip_ids("val"))
    assert read_rows(dataset, [ids[0]], columns=["clip_id"]) == [{"clip_id": ids[0]}]
    with pytest.raises(KeyError, match="nope"):
        r.read_rows(["nope"])
    with pytest.raises(ValueError, match="unknown column"):
        r.read_table(ids[:1], columns=["motions"])


def test_load_batch_pads_and_masks(dataset):
    r = ClipReader(dataset)
    ids = r.clip_ids()[::7]
    b = r.load_batch(ids)
    lengths = b["lengths"].numpy()
    B, T = len(ids), lengths.max()
    assert b["motion"].shape == (B, T, 198) and b["presence"].shape == (B, T, 2) and b["clip_ids"] == ids
    rows = {x["clip_id"]: x for x in r.read_rows(ids)}
    for i, cid in enumerate(ids):
        n = lengths[i]
        assert n == rows[cid]["num_frames"]
        np.testing.assert_array_equal(b["motion"][i, :n].numpy(), rows[cid]["motion"])
        np.testing.assert_array_equal(b["presence"][i, :n].numpy(), rows[cid]["presence"])
        assert not b["presence"][i, n:].any() and not b["motion"][i, n:].any()
    assert load_batch(dataset, ids[:2], pad_to=144)["motion"].shape == (2, 144, 198)


def test_reader_sees_new_and_rewritten_shards(dataset, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(dataset, d)
    r = ClipReader(d)
    first = sorted((d / "shards").glob("*.parquet"))[0]
    first.rename(d / "shards" / "moved-away.bak")
    r.refresh()
    assert len(r) < 60
    (d / "shards" / "moved-away.bak").rename(first)
    r.refresh()
    assert len(r) == 60


def test_query_command_formats(dataset, capsys):
    assert main(["query", str(dataset), "SELECT split, count(*) AS n FROM clips GROUP BY split ORDER BY split",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # one JSON array
    assert sum(r["n"] for r in rows) == 60 and {r["split"] for r in rows} <= {"train", "val", "test"}
    assert main(["query", str(dataset), "SELECT split, count(*) AS n FROM clips GROUP BY split ORDER BY split",
                 "--format", "jsonl"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == rows  # one object per line
    assert main(["query", str(dataset), "SELECT count(*) AS n FROM captions", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].strip('"') == "n" and int(out[1]) >= 60
    assert main(["query", str(dataset), "SELECT state FROM ledger LIMIT 1"]) == 0
    assert "done" in capsys.readouterr().out
    assert main(["query", str(dataset), "SELECT nonsense FROM clips"]) == 2
    assert "query failed" in capsys.readouterr().err


def test_status_lists_failures_with_paths_and_reasons(tmp_path, capsys):
    led = Ledger(tmp_path)
    led.register("v1", "/videos/ok.mp4", "fp")
    led.register("v2", "/videos/broken.mp4", "fp")
    led.register("v3", "/videos/empty.mp4", "fp")
    led.mark_running("v2")
    led.mark_failed("v2", "decoder error at frame 12")
    led.mark_quarantined("v3", "no video stream")
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pending 1" in out and "failed 1" in out and "quarantined 1" in out
    assert "/videos/broken.mp4" in out and "decoder error at frame 12" in out
    assert "/videos/empty.mp4" in out and "no video stream" in out
    assert "/videos/ok.mp4" not in out


def test_card_writes_markdown_histogram_and_dropped_reasons(dataset, tmp_path, capsys):
    import shutil

    d = tmp_path / "D"
    shutil.copytree(dataset, d)
    Ledger(d).record_dropped("x", [(0.0, 1.0, "no_hands", None), (1.0, 2.0, "no_hands", None),
                                   (2.0, 3.0, "reproj_px_median", "reproj_px_median 31.0 > 22.0 px", "marked")])
    assert main(["card", str(d)]) == 0
    out = capsys.readouterr().out
    md = (d / "card" / "card.md").read_text()
    assert out.strip() == md.strip()
    assert "60 clips" in md and "synthetic" in md and "| no_hands | 2 |" in md and "presence" in md
    dropped, marked = md.split("Dropped clips by reason")[1].split("Marked clips by reason")
    assert "| no_hands | 2 |" in dropped and "reproj" not in dropped and "| reproj_px_median | 1 |" in marked
    # the quality fields as distributions: one row per field (clips, min, p10, median, p90, max, mean)
    con = connect(d)
    med = con.execute("SELECT median(quality.reproj_px_median), median(quality.wrist_depth_jump_p95) "
                      "FROM clips").fetchone()
    section = md.split("## Quality")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in section.splitlines() if line.startswith("| ")}
    assert float(rows["reproj_px_median"][3]) == pytest.approx(med[0], rel=1e-2)
    assert float(rows["wrist_depth_jump_p95"][3]) == pytest.approx(med[1], rel=1e-2)
    for field in ("bone_length_cv", "fit_rejected", "reproj_px_p95", "reproj_px_median (% of the image diagonal)"):
        assert len(rows[field]) == 7, field
    # per hand track (one hand in one clip, null where absent), % of the diagonal
    tracks = np.concatenate([[r[0] for r in con.execute(
        f"SELECT 100 * quality.reproj_track_mean_{s} / sqrt(image_size[1]^2 + image_size[2]^2) FROM clips "
        f"WHERE quality.reproj_track_mean_{s} IS NOT NULL").fetchall()] for s in ("left", "right")])
    assert "Reprojection error per hand track" in section and len(tracks) > 60
    assert int(rows["track's mean"][0]) == len(tracks)
    assert float(rows["track's mean"][1]) == pytest.approx(np.median(tracks), rel=1e-2, abs=1e-3)
    for png in ("length_hist.png", "quality_hist.png"):
        assert (d / "card" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["card", str(tmp_path / "nothing-here")]) == 2


def test_fetch_clips_reads_only_the_right_shards(dataset, tmp_path):
    import shutil

    from storage.catalog import fetch_clips

    d = tmp_path / "D"
    shutil.copytree(dataset, d)
    con = connect(d)
    ids = ClipReader(d).clip_ids()
    t = fetch_clips(con, d, [ids[40], ids[2], "missing"])
    assert sorted(t.column("clip_id").to_pylist()) == sorted([ids[40], ids[2]])
    assert t.column_names == connect(d).sql("SELECT * FROM clips LIMIT 0").columns
    assert fetch_clips(con, d, [ids[5]], ["clip_id", "num_frames"]).column_names == ["clip_id", "num_frames"]
    assert fetch_clips(con, d, ["missing"]).num_rows == 0
    assert main(["synth", "--out", str(tmp_path / "more"), "--clips", "5", "--seed", "99"]) == 0
    new = sorted((tmp_path / "more" / "shards").glob("*.parquet"))[0]
    shutil.copy(new, d / "shards" / "part-extra.parquet")  # a shard written after the lookup table
    extra = ClipReader(tmp_path / "more").clip_ids()[0]
    assert fetch_clips(con, d, [extra]).column("clip_id").to_pylist() == [extra]


def test_reader_is_safe_from_several_threads(dataset):
    from concurrent.futures import ThreadPoolExecutor

    r = ClipReader(dataset, threads=4)
    ids = r.clip_ids()
    batches = [ids[i::5] for i in range(5)] * 4
    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(r.load_batch, batches))
    for b, got in zip(batches, out):
        assert got["clip_ids"] == b and int(got["lengths"].sum()) == int(r.num_frames(b).sum())
