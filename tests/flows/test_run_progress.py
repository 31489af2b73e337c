"""Progress and failure causes where Prefect users look: the run's logs, its artifacts, its state.

Through the session's Prefect test server: a train-clutch run logs step/loss/ETA lines and keeps
a progress artifact; a failed run's state message and logs carry the exception type and message.
"""
from __future__ import annotations

import logging

import pytest

from tests.fixtures.shift_data import small_dataset

pytestmark = [pytest.mark.prefect]


def _run_logs(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as c:
        return [r.message for r in c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]


@pytest.mark.slow
def test_a_failed_train_run_carries_its_cause(prefect_harness, tmp_path):
    from flows.train_clutch import train_clutch

    state = train_clutch(dataset=str(tmp_path / "no_such_dataset"), out=str(tmp_path / "run"), stages=["shift"],
                         return_state=True)
    assert state.is_failed()
    assert "FileNotFoundError" in state.message and "no_such_dataset" in state.message
    logs = _run_logs(state.state_details.flow_run_id)
    assert any(m.startswith("train-clutch failed: FileNotFoundError") and "no_such_dataset" in m for m in logs), logs


@pytest.mark.slow
def test_a_training_stage_reports_step_loss_eta_and_a_progress_artifact(prefect_harness, tmp_path_factory, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.train_clutch import train_clutch

    state = train_clutch(dataset=str(small_dataset(tmp_path_factory)), out=str(tmp_path / "run"), stages=["shift"],
                         max_steps=3, batch=4, threads=1, return_state=True)
    assert state.is_completed(), state.message
    run_id = state.state_details.flow_run_id
    lines = [m for m in _run_logs(run_id) if m.startswith("shift: step")]
    assert lines and lines[-1].startswith("shift: step 3/3 (100%), loss ") and "ETA" in lines[-1], lines
    with get_client(sync_client=True) as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    progress = [a for a in arts if a.type == "progress"]
    assert progress and float(progress[0].data) == 100.0, [(a.type, a.data) for a in arts]


def test_step_reporter_logs_first_last_and_every_period():
    from clutch_core.training.progress import StepReporter, log, progress_of

    class Keep(logging.Handler):  # on the logger itself: immune to what other tests did to the root logger
        def __init__(self):
            super().__init__(logging.INFO)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    keep, level, disabled, off = Keep(), log.level, log.disabled, logging.root.manager.disable
    logging.disable(logging.NOTSET)
    log.addHandler(keep)
    log.setLevel(logging.INFO)
    log.disabled = False  # another library's dictConfig earlier in this process may have disabled it
    try:
        r = StepReporter("shift", total=100, every_s=3600.0)
        for step in range(1, 101):
            r.step(step, 1.0 / step)
    finally:
        log.removeHandler(keep)
        log.setLevel(level)
        log.disabled = disabled
        logging.disable(off)
    reports = [progress_of(rec) for rec in keep.records]
    assert [p.step for p in reports] == [1, 100]  # the period is an hour: only the first and the last
    assert reports[-1].eta_s == pytest.approx(0.0) and reports[-1].fraction == 1.0
    assert reports[-1].line().startswith("shift: step 100/100 (100%), loss 0.0100, ETA 0m00s")
