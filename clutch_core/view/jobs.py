"""Model work of the viewer off the UI thread, one job at a time.

Generate and Caption run the language model for seconds; the browser's callbacks must return at
once and two model calls must never run together (they would share the CPU and the model). A job
starts on its own thread only when none is running; otherwise `start` refuses and says which job
holds the model, so the page can tell the user to wait.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)


class OneJob:
    """Runs at most one job at a time on a background thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._name: str | None = None
        self._started = 0.0
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> str | None:
        """Name of the running job, or None."""
        with self._lock:
            return self._name

    def busy_message(self) -> str:
        with self._lock:
            return (f"busy: {self._name} is running (started {time.monotonic() - self._started:.0f} s ago); "
                    "this click was ignored, try again when it ends")

    def start(self, name: str, work: Callable[[], Any], done: Callable[[Any], None],
              failed: Callable[[BaseException], None]) -> bool:
        """Run `work()` on a thread, then `done(result)` or `failed(error)`. False (and nothing runs)
        when another job is running."""
        with self._lock:
            if self._name is not None:
                return False
            self._name, self._started = name, time.monotonic()
            self._thread = threading.Thread(target=self._run, args=(work, done, failed), name=f"clutch-view-{name}",
                                            daemon=True)
            self._thread.start()
        return True

    def _run(self, work, done, failed) -> None:
        try:
            try:
                result = work()
            except Exception as e:  # noqa: BLE001 - every failure is reported to the page
                failed(e)
            else:
                done(result)
        except Exception:  # noqa: BLE001 - a broken report must not keep the job marked running
            log.exception("reporting the result of a viewer job failed")
        finally:
            with self._lock:
                self._name = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job (if any) to end; True when none is running afterwards."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.running is None
