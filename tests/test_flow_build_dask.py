"""The Dask task runner builds exactly what the default thread runner builds."""
from __future__ import annotations

import numpy as np
import pytest

from flow_videos import make_videos

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def test_dask_runner_gives_the_same_clips_as_threads(prefect_harness, shared_data, tmp_path):
    pytest.importorskip("prefect_dask")
    from clutch_cli import main
    from storage.reader import read_rows

    videos = make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path / "v", ["kitchen_a", "kitchen_c"])
    small = ["--set", "decode_short_side=180", "--set", "decode_max_long_side=320", "--no-progress",
             "--batch-size", "1"]
    runs = {}
    for runner in ("thread", "dask"):
        out = tmp_path / runner
        assert main(["build", *map(str, videos.values()), "--out", str(out), "--task-runner", runner,
                     "--workers", "2", *small]) == 0
        runs[runner] = sorted(read_rows(out), key=lambda r: r["clip_id"])
    thread, dask = runs["thread"], runs["dask"]
    assert thread and [r["clip_id"] for r in dask] == [r["clip_id"] for r in thread]
    for a, b in zip(dask, thread):
        for col in ("motion", "presence", "joints3d"):
            assert np.array_equal(a[col], b[col]), (a["clip_id"], col)
