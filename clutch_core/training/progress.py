"""Training progress: log records (step, loss and ETA every `every_s` seconds) and a terminal bar.

The trainers stay free of any orchestrator: they log to the standard `logging` module
(logger "clutch_core.training.progress"), and each record carries a `StepProgress` in its
`clutch_progress` attribute. Whoever runs a trainer decides where that goes: the flows
forward it to Prefect's run logger and a progress artifact; the CLI drops it while a
progress bar already shows the same numbers.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)
EVERY_S = 30.0  # a line per half minute: visible in a deployment's logs without flooding them
RECORD_ATTR = "clutch_progress"


@dataclass(frozen=True)
class StepProgress:
    stage: str
    step: int
    total: int
    loss: float
    eta_s: float | None  # None until a step has been timed

    @property
    def fraction(self) -> float:
        return self.step / max(self.total, 1)

    def line(self) -> str:
        eta = "?" if self.eta_s is None else format_seconds(self.eta_s)
        return f"{self.stage}: step {self.step}/{self.total} ({100 * self.fraction:.0f}%), loss {self.loss:.4f}, ETA {eta}"


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class StepReporter:
    """Call `step(step, loss)` after every training step; logs at most once per `every_s` seconds,
    and always at the first and the last step (so a short stage still shows a line)."""

    def __init__(self, stage: str, total: int, start: int = 0, every_s: float = EVERY_S):
        self.stage, self.total, self.start, self.every_s = stage, total, start, every_s
        self._t0 = self._last = time.monotonic()
        self._logged_first = False

    def step(self, step: int, loss: float) -> None:
        now = time.monotonic()
        due = now - self._last >= self.every_s or step >= self.total or not self._logged_first
        if not due:
            return
        done = step - self.start
        eta = (now - self._t0) / done * (self.total - step) if done > 0 else None
        report = StepProgress(self.stage, step, self.total, float(loss), eta)
        log.info(report.line(), extra={RECORD_ATTR: report})
        self._last, self._logged_first = now, True


def progress_of(record: logging.LogRecord) -> StepProgress | None:
    return getattr(record, RECORD_ATTR, None)


def progress_bar(on: bool, total: int, initial: int, desc: str):
    """A tqdm bar on an interactive terminal, else None (a log file gets StepReporter's lines only)."""
    if not on or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)


class TrainingProgress:
    """What a training loop reports after each step: the bar (terminals only) and the log lines."""

    def __init__(self, stage: str, total: int, start: int, bar: bool = True, report: bool = True):
        self.bar = progress_bar(bar, total, start, stage)
        self.reporter = StepReporter(stage, total, start=start) if report else None

    def step(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        if self.reporter is not None:
            self.reporter.step(step, loss)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
