"""The Dask and Ray task runners build exactly what the default thread runner builds."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.fixtures.flow_videos import make_videos

pytestmark = [pytest.mark.slow, pytest.mark.prefect]

SMALL = ["--set", "decode_short_side=180", "--set", "decode_max_long_side=320", "--no-progress", "--batch-size", "1"]


def _build(videos: dict, out, runner: str) -> list[dict]:
    from clutch_cli import main
    from flows.build_progress import count_videos
    from storage.reader import read_rows

    assert main(["build", *map(str, videos.values()), "--out", str(out), "--task-runner", runner,
                 "--workers", "2", *SMALL]) == 0
    # The progress bar counts Prefect's task states: the videos annotated in the cluster's worker
    # processes must show up there under this flow run (states arrive a moment late: wait for them).
    run_id = _latest_build_run()
    for _ in range(60):
        counts = count_videos(run_id, len(videos))
        if counts and counts.finished == len(videos):
            break
        time.sleep(0.5)
    assert counts and counts.done == len(videos) and counts.failed == counts.quarantined == 0, (runner, counts)
    return sorted(read_rows(out), key=lambda r: r["clip_id"])


def _latest_build_run():
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as c:
        (run,) = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["build-3dhiw"])),
                                  sort=FlowRunSort.START_TIME_DESC, limit=1)
    return run.id


@pytest.fixture(scope="module")
def videos(shared_data, tmp_path_factory):
    return make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path_factory.mktemp("v"),
                       ["kitchen_a", "kitchen_c"])


@pytest.fixture(scope="module")
def thread_rows(prefect_harness, videos, tmp_path_factory):
    return _build(videos, tmp_path_factory.mktemp("thread"), "thread")


@pytest.mark.parametrize("runner", ["dask", "ray"])
def test_cluster_runner_gives_the_same_clips_as_threads(runner, prefect_harness, videos, thread_rows, tmp_path):
    rows = _build(videos, tmp_path / runner, runner)
    assert thread_rows and [r["clip_id"] for r in rows] == [r["clip_id"] for r in thread_rows]
    for a, b in zip(rows, thread_rows):
        for col in ("motion", "presence", "joints3d"):
            assert np.array_equal(a[col], b[col]), (runner, a["clip_id"], col)
