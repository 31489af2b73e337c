"""build-3dhiw is safe to kill and rerun: same clips and rows as an uninterrupted build.

Real pipeline end to end (PyAV/decord decode, MediaPipe tracking, captions, shards) on
small re-encoded variants of the sample video, with the session Prefect test server.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.builds import NAMES, SMALL, assert_same_rows, rows_of, states
from tests.fixtures.flow_videos import make_videos

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

@pytest.fixture(scope="module")
def videos(shared_data, tmp_path_factory) -> dict[str, Path]:
    return make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path_factory.mktemp("videos"),
                       NAMES)


def build(out: Path, videos: list[Path], **kw):
    from flows.build_3dhiw import build_3dhiw

    params = dict(batch_size=1, workers=1, retries=0, retry_delay_s=0.0, annotate=SMALL) | kw
    return build_3dhiw(videos=[str(v) for v in videos], out=str(out), return_state=True, **params)


@pytest.fixture(scope="module")
def reference(prefect_harness, videos, tmp_path_factory) -> Path:
    """An uninterrupted build of NAMES."""
    out = tmp_path_factory.mktemp("reference")
    state = build(out, [videos[n] for n in NAMES])
    assert state.is_completed(), state
    return out


def start_cli_build(out: Path, videos: list[Path]) -> subprocess.Popen:
    """`clutch build` in a subprocess, against the session's Prefect server (no ephemeral one)."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "clutch_cli", "build", *map(str, videos), "--out", str(out),
           "--batch-size", "1", "--workers", "1", "--retries", "0", "--no-progress",
           *[a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(proc: subprocess.Popen, cond, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert proc.poll() is None, "the build finished before the moment to kill it"
        assert time.monotonic() - t0 < timeout_s, "timed out waiting for the moment to kill the build"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_at_any_moment_then_rerun_equals_uninterrupted(reference, videos, tmp_path):
    out = tmp_path / "killed"
    vids = [videos[n] for n in NAMES]
    shards = lambda: list((out / "shards").glob("part-*.parquet")) if (out / "shards").exists() else []

    # 1: killed right after the first shard lands (its videos are maybe not marked done yet)
    kill_when(start_cli_build(out, vids), lambda: len(shards()) >= 1)
    # 2: killed mid-batch, while a video is being annotated (the ledger says running)
    n_before = len(shards())
    kill_when(start_cli_build(out, vids), lambda: "running" in states(out).values() and len(shards()) == n_before)
    assert "running" in states(out).values()

    state = build(out, vids)  # the same build again, to the end
    assert state.is_completed(), state
    assert set(states(out).values()) == {"done"}
    assert_same_rows(rows_of(out), rows_of(reference))
    assert len(rows_of(reference)) >= len(NAMES)  # real clips were found in every variant


def test_rerun_builds_nothing_and_keeps_shards(reference, videos):
    before = {p.name: p.stat().st_mtime_ns for p in (reference / "shards").glob("*.parquet")}
    rows = rows_of(reference)
    state = build(reference, [videos[n] for n in NAMES])
    s = state.result()
    assert (s["built"], s["clips_new"], s["done"]) == (0, 0, len(NAMES))
    assert {p.name: p.stat().st_mtime_ns for p in (reference / "shards").glob("*.parquet")} == before
    assert_same_rows(rows_of(reference), rows)


def test_other_settings_on_the_same_dataset_are_refused(reference, videos, capsys):
    from clutch_cli import main

    rc = main(["build", str(videos["kitchen_a"]), "--out", str(reference), "--no-progress",
               "--set", "decode_short_side=200", "--set", "decode_max_long_side=320"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "decode_short_side: 180 -> 200" in err and "new --out" in err


def test_failed_video_waits_for_retry_failed(prefect_harness, videos, tmp_path, monkeypatch, capsys):
    import annotators.pipeline as pipeline
    from clutch_cli import main

    out, video = tmp_path / "ds", videos["kitchen_a"]
    real = pipeline.annotate_video
    calls = []

    def flaky(path, *a, **k):  # a transient fault (e.g. a network share hiccup), every attempt
        calls.append(path)
        raise OSError(f"{path}: input/output error")

    args = ["build", str(video), "--out", str(out), "--retries", "1", "--retry-delay-s", "0", "--no-progress",
            *[a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]]
    monkeypatch.setattr(pipeline, "annotate_video", flaky)
    assert main(args) == 1  # failed
    assert len(calls) == 2  # first attempt + one retry
    from storage.ledger import Ledger

    (rec,) = Ledger(out).by_state()
    assert rec.state == "failed" and "input/output error" in rec.error and str(video) in rec.error

    monkeypatch.setattr(pipeline, "annotate_video", real)
    assert main(args) == 1  # still failed: not retried without --retry-failed
    assert Ledger(out).get(rec.video_id).state == "failed"
    assert main(args + ["--retry-failed"]) == 0
    assert Ledger(out).get(rec.video_id).state == "done"
    assert rows_of(out) and all(r["video_id"] == rec.video_id for r in rows_of(out).values())
    assert "videos done 1, failed 0, quarantined 0" in capsys.readouterr().out
