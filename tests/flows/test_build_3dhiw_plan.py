"""build-3dhiw's parts without Prefect: input discovery, manifests, planning, repairing a killed build."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotators.inputs import InputError, discover_inputs, read_manifest
from storage.ledger import Ledger
from storage.resume import (DatasetBusy, SettingsMismatch, batch_key, check_settings, count_clips, dataset_lock,
                            plan_batches, reconcile_shards)
from storage.schema import TRACK_QUALITY_FIELDS
from storage.writer import list_shards, write_shard


def _files(tmp_path, names: dict[str, bytes]):
    out = {}
    for name, data in names.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[name] = p
    return out


def test_folders_globs_and_files_expand_to_unique_videos_by_content(tmp_path):
    f = _files(tmp_path, {"a/one.mp4": b"1", "a/sub/two.MOV": b"2", "a/notes.txt": b"x", "b/copy.mkv": b"1",
                          "c/odd.bin": b"3"})
    vids = discover_inputs([str(tmp_path / "a"), str(tmp_path / "b" / "*.mkv"), str(f["c/odd.bin"])])
    assert [v.path for v in vids] == [str(f["a/one.mp4"]), str(f["a/sub/two.MOV"]), str(f["c/odd.bin"])]
    assert len({v.video_id for v in vids}) == 3  # copy.mkv has one.mp4's bytes: built once
    assert vids[0].name == "one" and vids[0].intrinsics is None
    with pytest.raises(InputError, match="missing.mp4"):
        discover_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(InputError, match=r"no file matches"):
        discover_inputs([str(tmp_path / "*.webm")])


def test_manifest_csv_and_parquet_with_ids_intrinsics_and_relative_paths(tmp_path):
    f = _files(tmp_path, {"v/P01_01.mp4": b"a", "v/P01_02.mp4": b"b"})
    csv = tmp_path / "v" / "manifest.csv"
    csv.write_text("path,video_id,fx,fy,cx,cy\nP01_01.mp4,P01_01,900,900,960,540\n"
                   f"{f['v/P01_02.mp4']},,,,,\n")
    vids = discover_inputs([str(csv)])
    assert [(v.video_id, v.name, v.intrinsics) for v in vids] == [
        ("P01_01", "P01_01", (900.0, 900.0, 960.0, 540.0)), (vids[1].video_id, "P01_02", None)]
    assert len(vids[1].video_id) == 16  # no id given: the content hash

    pq.write_table(pa.table({"path": [str(f["v/P01_01.mp4"])]}), tmp_path / "m.parquet")
    assert [v.path for v in read_manifest(tmp_path / "m.parquet")] == [str(f["v/P01_01.mp4"])]

    bad = tmp_path / "bad.csv"
    for text, match in [("file\nx.mp4\n", "needs a 'path' column"), ("path,fx\nv/P01_01.mp4,3\n", "all of"),
                        ("path\nnope.mp4\n", r"bad.csv, row 2: video not found"),
                        ("path,fx,fy,cx,cy\nv/P01_01.mp4,-1,1,1,1\n", "fx, fy > 0")]:
        bad.write_text(text)
        with pytest.raises(InputError, match=match):
            read_manifest(bad)


def _row(video_id: str, k: int) -> dict:
    t = 4
    return dict(clip_id=f"{video_id}-{k:06d}", video_id=video_id, source_uri=f"/v/{video_id}.mp4", start_s=float(k),
                end_s=k + t / 15, fps=15.0, num_frames=t, split="train", motion=np.zeros((t, 198), np.float32),
                presence=np.ones((t, 2), bool), joints3d=np.zeros((t, 2, 21, 3), np.float32),
                keypoints2d=np.zeros((t, 2, 21, 2), np.float32), pose_convention="skeleton-ik",
                captions=[{"source": "kinematic", "text": "hands rest"}], tracker={"name": "t", "version": "1"},
                quality=dict(presence_left=1.0, presence_right=1.0, jitter=0.0, bone_length_cv=0.0,
                             handedness_score=1.0, reproj_px_median=0.0, reproj_px_p95=0.0,
                             wrist_depth_jump_p95=0.0, fit_rejected=0.0, flags="",
                             **dict.fromkeys(TRACK_QUALITY_FIELDS, 0.0)),
                hand_shape={"kind": "bone_lengths", "left": [0.03] * 20, "right": [0.03] * 20}, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))


def test_a_shard_written_but_not_marked_is_adopted_and_a_stale_copy_deleted(tmp_path):
    ledger = Ledger(tmp_path)
    for v in ("va", "vb", "vc"):
        ledger.register(v, f"/v/{v}.mp4", "fp")
    # killed after writing batch [va, vb]'s shard, before marking (vb had no clip)
    shard = write_shard(tmp_path, batch_key(["va", "vb"]), [_row("va", 0), _row("va", 1)])
    # and a stale copy of vc's clips besides the shard the ledger names for it
    done = write_shard(tmp_path, batch_key(["vc"]), [_row("vc", 0)])
    ledger.mark_done("vc", done.name)
    stale = write_shard(tmp_path, batch_key(["vc", "vx"]), [_row("vc", 0)])

    assert reconcile_shards(ledger, tmp_path) == {"adopted": [shard.name], "deleted": [stale.name]}
    assert (ledger.get("va").state, ledger.get("va").shard) == ("done", shard.name)
    assert ledger.get("vb").state == "pending"  # its outcome is unknown: built again, adds no clip twice
    assert {p.name for p in list_shards(tmp_path)} == {shard.name, done.name}
    assert count_clips(tmp_path) == 3
    assert reconcile_shards(ledger, tmp_path) == {"adopted": [], "deleted": []}  # idempotent


def test_plan_takes_pending_and_dead_running_and_failed_or_quarantined_only_when_asked(tmp_path):
    ledger = Ledger(tmp_path)
    ids = ["p1", "r1", "f1", "q1", "d1", "p2"]
    for v in ids:
        ledger.register(v, f"/v/{v}.mp4", "fp")
    ledger.mark_running("r1")  # a build died while annotating it
    ledger.mark_failed("f1", "boom")
    ledger.mark_quarantined("q1", "/v/q1.mp4: not a video")
    ledger.mark_done("d1", None)

    plan = plan_batches(ledger, ids, 2)
    assert plan.batches == [["p1", "r1"], ["p2"]]
    assert plan.skipped == {"f1": "failed", "q1": "quarantined", "d1": "done"}
    plan = plan_batches(ledger, ids, 2, retry_failed=True, include_quarantined=True)
    assert plan.batches == [["p1", "r1"], ["f1", "q1"], ["p2"]]
    assert batch_key(["b", "a"]) == batch_key(["a", "b"]) != batch_key(["a"])


def test_other_settings_are_refused_naming_them_and_a_busy_dataset_too(tmp_path):
    ledger = Ledger(tmp_path)
    check_settings(ledger, "fp1", {"decode_short_side": 480, "fps": 15.0})
    check_settings(ledger, "fp1", {"decode_short_side": 480, "fps": 15.0})
    with pytest.raises(SettingsMismatch, match=r"decode_short_side: 480 -> 240.*new --out"):
        check_settings(ledger, "fp2", {"decode_short_side": 240, "fps": 15.0})
    with dataset_lock(tmp_path):
        with pytest.raises(DatasetBusy, match="another build"):
            with dataset_lock(tmp_path):
                pass
    with dataset_lock(tmp_path):  # released
        pass


def test_dask_without_its_extra_is_a_clear_error_and_serve_offers_build_3dhiw_local():
    pytest.importorskip("prefect")
    from flows.build_3dhiw import make_task_runner
    from flows.config import BuildConfig
    from clutch_cli.deployments import load_deployments

    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"clutch\[dask\]"):
            make_task_runner(BuildConfig(videos=["v.mp4"], out="out", task_runner="dask"))
    with pytest.raises(ValueError, match="task_runner"):
        BuildConfig(videos=["v.mp4"], out="out", task_runner="spark")
    (dep,) = load_deployments(["build-3dhiw/local"])
    assert (dep.flow_name, dep.name, dep.entrypoint) == ("build-3dhiw", "local", "flows.build_3dhiw.build_3dhiw")
    with pytest.raises(ValueError, match="served deployments"):
        load_deployments(["train-nothing/local"])


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_temporary_server_process_dies_when_its_parent_is_sigkilled():
    """The guard `clutch build`'s temporary Prefect server runs first (the server itself takes ~15 s)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    server = ("import sys, time; sys.path[0] = %r; from flows.temp_server import _die_with_parent; "
              "_die_with_parent(int(sys.argv[1])); print('armed', flush=True); time.sleep(60)" % repo)
    build = ("import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', sys.argv[1], "
             "str(os.getpid())], stdout=subprocess.PIPE, text=True); p.stdout.readline(); print(p.pid, flush=True); "
             "time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", build, server], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the server process outlived its SIGKILLed parent")


def test_a_file_growing_while_hashed_is_skipped_and_a_changed_one_is_named(tmp_path, monkeypatch, caplog):
    import annotators.inputs as inputs

    f = _files(tmp_path, {"v/done.mp4": b"1", "v/copying.mp4": b"22"})
    real = inputs.video_id

    def hashing_while_copied(path):  # the copy goes on while the build reads the file
        vid = real(path)
        if path.name == "copying.mp4":
            with open(path, "ab") as fh:
                fh.write(b"more")
        return vid

    monkeypatch.setattr(inputs, "video_id", hashing_while_copied)
    with caplog.at_level("WARNING"):
        vids = discover_inputs([str(tmp_path / "v")])
    assert [v.path for v in vids] == [str(f["v/done.mp4"])]
    assert "copying.mp4: still being written" in caplog.text and "the next build takes it" in caplog.text
    v = vids[0]
    assert v.changed() is None
    f["v/done.mp4"].write_bytes(b"1 and then some")
    assert "changed since the build found it (1 -> 15 bytes" in v.changed()
    f["v/done.mp4"].unlink()
    assert "removed since the build found it" in v.changed()
