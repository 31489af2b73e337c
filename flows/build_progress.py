"""Progress of a build-3dhiw run, from Prefect's task states: right under every task runner.

Under Dask or Ray the videos are annotated in other processes, so no counter of the flow's
process sees them; Prefect's API sees every task run. `BuildWatch.poll()` counts this flow
run's finished `annotate-video` task runs by state (Completed, Quarantined, Failed), keeps
the newest counts in `latest()` (the `clutch build` progress bar draws them), updates a
progress artifact (the UI's live bar), and logs a line with counts and ETA every `every_s`
seconds through the run logger. Task states reach the API a moment after they happen, so
the flow sets the exact final counts from the batches' outcomes (`finish`).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prefect import get_run_logger

from clutch_core.training.progress import format_seconds
from flows.run_progress import ProgressArtifact

QUARANTINED = "Quarantined"  # the annotate-video task's final state for bad input (type COMPLETED)
ANNOTATE_PREFIX = "annotate-"


@dataclass(frozen=True)
class BuildCounts:
    total: int = 0
    done: int = 0  # annotated (written to a shard when its batch finishes)
    failed: int = 0
    quarantined: int = 0
    clips: int | None = None  # known once batches finish

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.quarantined


_lock = threading.Lock()
_latest = BuildCounts()


def latest() -> BuildCounts:
    """The newest counts of the build running in this process (zeros before one starts)."""
    with _lock:
        return _latest


def _publish(c: BuildCounts) -> None:
    global _latest
    with _lock:
        _latest = c


class BuildWatch:
    def __init__(self, flow_run_id, total: int, every_s: float = 30.0):
        self.flow_run_id, self.total, self.every_s = flow_run_id, total, every_s
        self._t0 = self._last_log = time.monotonic()
        self._artifact = ProgressArtifact(f"build-3dhiw: 0/{total} videos")
        _publish(BuildCounts(total=total))

    def poll(self) -> BuildCounts:
        counts = self._counts()
        _publish(counts)
        self._report(counts, force=False)
        return counts

    def finish(self, done: int, failed: int, quarantined: int, clips: int) -> None:
        counts = BuildCounts(self.total, done, failed, quarantined, clips)
        _publish(counts)
        self._report(counts, force=True)

    def _report(self, c: BuildCounts, force: bool) -> None:
        line = (f"build-3dhiw: {c.finished}/{c.total} videos (done {c.done}, failed {c.failed}, "
                f"quarantined {c.quarantined})")
        self._artifact.update(c.finished / max(c.total, 1), line)
        now = time.monotonic()
        if force or now - self._last_log >= self.every_s:
            elapsed = now - self._t0
            eta = elapsed / c.finished * (c.total - c.finished) if c.finished else None
            get_run_logger().info("%s, ETA %s", line, "?" if eta is None else format_seconds(eta))
            self._last_log = now

    def _counts(self) -> BuildCounts:
        return count_videos(self.flow_run_id, self.total) or latest()  # the API busy: keep the last counts


def count_videos(flow_run_id, total: int) -> BuildCounts | None:
    """Videos of a build-3dhiw flow run by the final states of its annotate-video task runs (None when
    the API does not answer)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName,
                                                TaskRunFilterState, TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    final = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
    flt = TaskRunFilter(name=TaskRunFilterName(like_=ANNOTATE_PREFIX),
                        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=final)))
    runs, offset = [], 0
    try:
        with get_client(sync_client=True) as client:
            while True:
                page = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                             task_run_filter=flt, offset=offset, limit=200)
                runs += page
                offset += len(page)
                if len(page) < 200:
                    break
    except Exception:
        return None
    states = [r.state for r in runs if r.name.startswith(ANNOTATE_PREFIX) and r.state is not None]
    quarantined = sum(1 for st in states if st.name == QUARANTINED)
    done = sum(1 for st in states if st.type == StateType.COMPLETED) - quarantined
    return BuildCounts(total, done, len(states) - done - quarantined, quarantined)
