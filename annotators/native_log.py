"""Keep MediaPipe's native INFO/WARNING log lines off the terminal (progress bar, Prefect logs).

MediaPipe, LiteRT/TFLite and absl write them from C++ threads straight to file descriptor 2:
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "INFO: [environment.cc:36] ...",
"W0000 00:00:... inference_runner_litert.cc ...". No Python logger sees them, in the
mediapipe 1.x wheels neither GLOG_minloglevel nor TF_CPP_MIN_LOG_LEVEL silences them
(tried), and they come from background threads at any time, so wrapping calls does not
catch them all. `install()` filters fd 2 for the rest of the process: fd 2 becomes a pipe
read by a thread that drops those lines and passes everything else (errors included) on,
while Python's `sys.stderr` (progress bars, tracebacks) writes to the terminal directly.

Set CLUTCH_NATIVE_LOGS=1 (`clutch -v ...` does) to see them all.
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading

ENV = "CLUTCH_NATIVE_LOGS"
# INFO:/WARNING: lines of LiteRT/TFLite, absl's pre-init notice, absl/glog I and W lines
_NOISE = re.compile(rb"^(INFO: |WARNING: Logging before InitGoogle|[IW]\d{4} \d\d:\d\d:\d+\.\d+ )")
_installed: threading.Thread | None = None


def wanted() -> bool:
    """True when CLUTCH_NATIVE_LOGS asks for the native lines."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def filter_noise(data: bytes) -> bytes:
    """`data` without the native INFO/WARNING lines."""
    return b"".join(line for line in data.splitlines(keepends=True) if not _NOISE.match(line))


def install() -> bool:
    """Filter fd 2 of this process from now on; False (nothing done) when the lines are wanted,
    already filtered, or sys.stderr is not the process's own (a test harness captures it)."""
    global _installed
    if _installed is not None or wanted() or sys.stderr is not sys.__stderr__:
        return False
    sys.stderr.flush()
    term = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)
    sys.stderr = sys.__stderr__ = open(term, "w", buffering=1, encoding=sys.stderr.encoding,
                                       errors=sys.stderr.errors, closefd=False)
    _installed = threading.Thread(target=_pump, args=(r, term), name="native-log-filter", daemon=True)
    _installed.start()
    atexit.register(_drain, term)
    return True


def _pump(r: int, term: int) -> None:
    pending = b""
    while chunk := os.read(r, 65536):
        pending += chunk
        cut = pending.rfind(b"\n") + 1  # whole lines only; a partial line waits for its end
        if cut:
            out, pending = filter_noise(pending[:cut]), pending[cut:]
            if out:
                os.write(term, out)
    if pending:
        os.write(term, filter_noise(pending))


def _drain(term: int) -> None:
    """At exit: give the terminal back to fd 2 and let the thread pass on what is still in the pipe."""
    sys.stderr.flush()
    os.dup2(term, 2)  # closes our write end; child processes may still hold theirs
    if _installed is not None:
        _installed.join(timeout=0.3)
