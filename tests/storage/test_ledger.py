"""Run ledger: states, fingerprints, dropped clips, and several processes reporting at once."""
import multiprocessing as mp
import sqlite3

import pytest

from storage.ledger import FingerprintMismatch, Ledger


def test_lifecycle_and_counts(tmp_path):
    led = Ledger(tmp_path)
    for v in ("a", "b", "c", "d"):
        assert led.register(v, f"/videos/{v}.mp4", "fp1").state == "pending"
    led.mark_running("a")
    assert led.get("a").state == "running"
    led.mark_done("a", "part-0.parquet")
    led.mark_running("b")
    led.mark_failed("b", "decoder crashed")
    led.mark_running("c")
    led.mark_quarantined("c", "not a video")
    assert led.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 1, "quarantined": 1}
    a, b = led.get("a"), led.get("b")
    assert (a.state, a.shard, a.attempts, a.error) == ("done", "part-0.parquet", 1, None)
    assert a.started_at <= a.finished_at
    assert (b.state, b.error) == ("failed", "decoder crashed")
    assert [r.video_id for r in led.by_state("failed", "quarantined")] == ["b", "c"]
    assert led.mark_running("b").attempts == 2 and led.get("b").error is None  # retried
    assert led.requeue_running("the build stopped") == 1
    assert (led.get("b").state, led.get("b").error) == ("pending", "the build stopped")
    assert led.get("zzz") is None
    with pytest.raises(KeyError, match="zzz"):
        led.mark_done("zzz", None)
    with pytest.raises(ValueError, match="unknown ledger state"):
        led.by_state("finished")


def test_state_survives_reopen_and_register_keeps_state(tmp_path):
    Ledger(tmp_path).register("a", "/old/a.mp4", "fp")
    led = Ledger(tmp_path)
    led.mark_running("a")
    led.mark_done("a", "part-1.parquet")
    rec = Ledger(tmp_path).register("a", "/renamed/a.mp4", "fp")  # same content, new path
    assert (rec.state, rec.source_uri) == ("done", "/renamed/a.mp4")
    assert sqlite3.connect(led.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_fingerprints_are_never_mixed(tmp_path):
    led = Ledger(tmp_path)
    led.ensure_fingerprint("fp1")
    led.ensure_fingerprint("fp1")
    assert led.fingerprint == "fp1"
    with pytest.raises(FingerprintMismatch, match="fp1"):
        led.ensure_fingerprint("fp2")
    led.register("a", "/a.mp4", "fp1")
    with pytest.raises(FingerprintMismatch):
        led.register("a", "/a.mp4", "fp2")
    led.set_meta("note", "x")
    assert led.get_meta("note") == "x" and led.get_meta("missing", "d") == "d"


def test_dropped_clips_are_replaced_per_video(tmp_path):
    led = Ledger(tmp_path)
    led.record_dropped("a", [(0.0, 2.0, "no_hands", None), (2.0, 4.0, "jitter", "12 m/s^2")])
    led.record_dropped("b", [(0.0, 1.0, "no_hands", None)])
    led.record_dropped("a", [(0.0, 2.0, "no_hands", None)])  # a rerun of video a replaces its records
    assert led.dropped_counts() == {"no_hands": 2}


def _worker(dataset, wid, n_workers, n_videos, go, out):
    from storage.integrity import ShardFacts, VideoClips

    led = Ledger(dataset)
    go.wait()  # all workers start together, so their transactions really interleave
    for i in range(n_videos):  # every worker registers every video: registration is idempotent
        led.register(f"v{i:03d}", f"/videos/{i}.mp4", "fp")
    mine = [f"v{i:03d}" for i in range(wid, n_videos, n_workers)]
    for k in range(0, len(mine), 2):  # batches of two, each marked done in one transaction
        batch = mine[k:k + 2]
        led.mark_batch_done(batch, ShardFacts(f"part-{wid}-{k}.parquet", 2, 100, "0" * 64, 1,
                                              {v: VideoClips(1, v) for v in batch}))
    out.put((wid, mine))


@pytest.mark.slow
def test_concurrent_workers_mark_batches_done(tmp_path):
    n_workers, n_videos = 4, 80
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), w, n_workers, n_videos, go, out))
             for w in range(n_workers)]
    for p in procs:
        p.start()
    go.set()
    marked = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    led = Ledger(tmp_path)
    assert led.counts()["done"] == n_videos
    assert len(led.shard_records()) == n_videos // 2
    for w, vids in marked.items():
        for k, v in enumerate(vids):
            rec = led.get(v)
            assert (rec.shard, rec.num_clips, rec.clips_sha256) == (f"part-{w}-{k // 2 * 2}.parquet", 1, v)


def test_an_old_ledger_gets_the_new_columns_and_keeps_its_rows(tmp_path):
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.executescript("""
        CREATE TABLE videos (video_id TEXT PRIMARY KEY, source_uri TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER
            NOT NULL DEFAULT 0, error TEXT, shard TEXT, fingerprint TEXT NOT NULL, worker TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);
        INSERT INTO videos VALUES ('a', '/a.mp4', 'done', 1, NULL, 'part-x.parquet', 'fp', NULL, 't', 't', 't', 't');
    """)
    db.close()
    rec = Ledger(tmp_path).get("a")
    assert (rec.state, rec.shard, rec.num_clips, rec.clips_sha256) == ("done", "part-x.parquet", None, None)
    assert Ledger(tmp_path).shard_records() == {}


def test_an_old_ledgers_dropped_clips_count_as_dropped(tmp_path):
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.executescript("""
        CREATE TABLE dropped_clips (video_id TEXT NOT NULL, start_s REAL, end_s REAL, reason TEXT NOT NULL, detail TEXT);
        INSERT INTO dropped_clips VALUES ('a', 0.0, 1.0, 'jitter', '70 m/s^2');
    """)
    db.close()
    led = Ledger(tmp_path)
    assert led.dropped_counts() == {"jitter": 1} and led.dropped_counts("marked") == {}
    led.record_dropped("b", [(0.0, 2.0, "fit_rejected", "fit_rejected 40% > 30%", "marked")])
    assert led.dropped_counts("marked") == {"fit_rejected": 1}
    assert [r[6] for r in led.clip_records()] == ["dropped", "marked"]


def test_forget_drops_a_pending_or_running_video_only(tmp_path):
    led = Ledger(tmp_path)
    for v in ("a", "b", "c"):
        led.register(v, f"/videos/{v}.mp4", "fp")
    led.mark_running("a")
    led.record_dropped("a", [(0.0, 2.0, "no_hands", None)])
    led.mark_running("c")
    led.mark_done("c", "part-0.parquet")
    for v in ("a", "b", "c"):
        led.forget(v)
    assert led.get("a") is None and led.get("b") is None and led.dropped_counts() == {}
    assert led.get("c").state == "done"  # a built video is never forgotten


def test_a_full_disk_is_reported_as_no_space_naming_the_ledger(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    from storage.ledger import LedgerNoSpace

    led = Ledger(tmp_path)
    led.register("a", "/videos/a.mp4", "fp")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 20, (10 << 20) - 1000, 1000))
    err = led._no_space(sqlite3.OperationalError("disk I/O error"))
    assert isinstance(err, LedgerNoSpace) and err.errno == errno.ENOSPC
    assert str(tmp_path) in str(err) and "free space and rerun the same command: it resumes" in str(err)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 0, 10 << 30))
    assert led._no_space(sqlite3.OperationalError("disk I/O error")) is None  # a real I/O error stays one
    assert isinstance(led._no_space(sqlite3.OperationalError("database or disk is full")), LedgerNoSpace)
    import pickle
    assert str(pickle.loads(pickle.dumps(err))) == str(err)  # crosses process pools intact


def test_register_many_keeps_states_updates_paths_and_refuses_other_settings(tmp_path):
    led = Ledger(tmp_path)
    led.register_many([("a", "/v/a.mp4"), ("b", "/v/b.mp4")], "fp")
    led.mark_running("a")
    led.mark_done("a", "part-0.parquet")
    led.register_many([("a", "/moved/a.mp4"), ("b", "/v/b.mp4"), ("c", "/v/c.mp4")], "fp")
    assert led.states() == {"a": "done", "b": "pending", "c": "pending"}
    assert led.get("a").source_uri == "/moved/a.mp4" and led.get("a").shard == "part-0.parquet"
    assert led.states(["a", "zzz"]) == {"a": "done"}
    with pytest.raises(FingerprintMismatch, match=r"video 'b' \(/v/b.mp4\)"):
        led.register_many([("b", "/v/b.mp4"), ("d", "/v/d.mp4")], "other")
    assert led.get("d") is None  # refused as a whole
    led.mark_failed("b", "crashed")
    led.reset_many(["b"])
    assert (led.get("b").state, led.get("b").error) == ("pending", None)


def test_a_partial_copys_pending_row_is_forgotten_once_its_path_holds_other_content(tmp_path):
    led = Ledger(tmp_path)
    led.register_many([("partial", "/v/a.mp4"), ("b", "/v/b.mp4"), ("gone", "/v/gone.mp4")], "fp")
    led.mark_running("b")
    led.mark_quarantined("b", "not a video")
    # the next build: a.mp4 is whole now (another id), b.mp4 was replaced, gone.mp4 is not among the inputs
    assert led.forget_superseded([("whole", "/v/a.mp4"), ("b2", "/v/b.mp4")]) == [("partial", "/v/a.mp4")]
    assert set(led.states()) == {"b", "gone"}  # a quarantined row and a path not given stay


def test_workers_opening_a_fresh_ledger_at_once_all_succeed(tmp_path):
    """Each new ledger adds its later columns; two openers at once must not both add one."""
    import threading

    for i in range(20):
        dataset = tmp_path / f"d{i}"
        barrier, errors = threading.Barrier(6), []

        def open_it():
            barrier.wait()
            try:
                Ledger(dataset)
            except Exception as e:  # noqa: BLE001 - the test collects whatever breaks
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
