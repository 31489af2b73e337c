"""Long stages' progress where Prefect users look: the run's logs and a live progress artifact.

clutch_core's trainers log `StepProgress` records (clutch_core.training.progress); inside a flow or
task run, `forward_progress` sends each one to Prefect's run logger (so `prefect deployment
run ... --watch` and the UI's log tab show step, loss and ETA) and to a progress artifact
(the UI's live bar). `ProgressArtifact` is the artifact alone, for the build's video count.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from prefect import get_run_logger

from clutch_core.training.progress import log as progress_log
from clutch_core.training.progress import RECORD_ATTR, progress_of

log = logging.getLogger(__name__)


class ProgressArtifact:
    """A Prefect progress artifact of the current run, 0-100 %; failures to reach the API never stop work."""

    def __init__(self, description: str):
        self.description, self._id, self._last = description, None, -1.0
        try:
            from prefect.artifacts import create_progress_artifact

            self._id = create_progress_artifact(progress=0.0, description=description)
        except Exception as e:  # no API, or not inside a run
            log.debug("no progress artifact: %s", e)

    def update(self, fraction: float, description: str | None = None) -> None:
        pct = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        if self._id is None or pct == self._last:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._id, pct, description=description or self.description)
            self._last = pct
        except Exception as e:
            log.debug("progress artifact not updated: %s", e)


class _Forward(logging.Handler):
    def __init__(self, run_logger, artifact: ProgressArtifact):
        super().__init__(logging.INFO)
        self.run_logger, self.artifact = run_logger, artifact

    def emit(self, record: logging.LogRecord) -> None:
        p = progress_of(record)
        if p is None:
            return
        self.run_logger.info(p.line(), extra={RECORD_ATTR: p})  # marked: a terminal may hide it
        self.artifact.update(p.fraction, p.line())


@contextlib.contextmanager
def forward_progress(what: str) -> Iterator[ProgressArtifact]:
    """While open (inside a flow or task run): trainer progress -> run logger + progress artifact."""
    artifact = ProgressArtifact(f"{what}: starting")
    handler = _Forward(get_run_logger(), artifact)
    level = progress_log.level
    progress_log.setLevel(logging.INFO)  # whatever the root logger's level (Prefect's is WARNING)
    progress_log.addHandler(handler)
    try:
        yield artifact
    finally:
        progress_log.removeHandler(handler)
        progress_log.setLevel(level)
