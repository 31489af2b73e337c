"""What the in-process flow commands (`clutch build`, `clutch train`) keep off the terminal.

Prefect logs "View at http://127.0.0.1:PORT/runs/..." for the temporary server these
commands start, a link that is dead once the command ends. Trainer progress records
(clutch_core.training.progress) repeat what a drawn progress bar already shows, and the flow repeats
them through its run logger.
"""
from __future__ import annotations

import logging

from clutch_core.training.progress import log as progress_log
from clutch_core.training.progress import progress_of

FLOW_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def _no_link(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("View at ")


def _no_step_lines(record: logging.LogRecord) -> bool:
    return progress_of(record) is None


def _no_raw_step_lines(record: logging.LogRecord) -> bool:
    """The trainer's own records; their copies through the run logger still show."""
    return progress_of(record) is None or record.name != progress_log.name


def hide_server_links() -> None:
    """Drop Prefect's links to a temporary server (idempotent)."""
    for name in FLOW_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _no_link not in logger.filters:
            logger.addFilter(_no_link)


def hide_step_lines(handler: logging.Handler, bar: bool) -> None:
    """Drop trainer progress lines from `handler`: all of them under a progress bar (it shows the same
    numbers), else the trainer's own records, which the run logger repeats."""
    f = _no_step_lines if bar else _no_raw_step_lines
    if f not in handler.filters:
        handler.addFilter(f)
