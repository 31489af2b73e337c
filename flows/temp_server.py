"""A temporary local Prefect server for one `clutch build`, that dies with the build.

Prefect's own temporary server (SubprocessASGIServer) is a plain child process stopped by an
atexit hook: a build killed with SIGKILL never runs it, and the server lives on. Here the
child asks Linux to send it SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, set by
the child itself, then a parent check that closes the race), and serves the same app as
Prefect's temporary server. Elsewhere than Linux it behaves like Prefect's.

    with temporary_server():      # no-op when PREFECT_API_URL is set
        build_3dhiw(...)

`start()` launches the process early (before heavy imports) and `temporary_server(started)` waits for it.

The child runs `main([PARENT_PID, PORT])` of this module, imported from the same project
folder as the parent (not from the working directory, which may hold another `flows`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1
# what Prefect sets for its temporary server: no UI, ephemeral services, last app of the process
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
_CHILD = (f"import sys; sys.path[0] = {str(Path(__file__).resolve().parents[1])!r}; "
          "from flows.temp_server import main; main(sys.argv[1:])")


class Starting:
    """A temporary server whose process is already starting (see `start`)."""

    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc, self.url = proc, url


def start() -> Starting | None:
    """Launch the server process now and return at once (None when PREFECT_API_URL is set).

    The server needs ~5 s of one core to import and open its database. `clutch build` calls this
    before its own heavy imports, so both run at the same time on two cores; `temporary_server`
    then waits for it to answer."""
    if "prefect" not in sys.modules:  # the child reads this same environment and profile: no need to
        if os.environ.get("PREFECT_API_URL"):  # import prefect here (about a second) before launching it
            return None
        env = {**os.environ, **SERVER_ENV}
    else:  # settings may be changed in this process (temporary_settings): pass them on
        from prefect.settings import PREFECT_API_URL, get_current_settings

        if PREFECT_API_URL.value():
            return None
        env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True), **SERVER_ENV}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(os.getpid()), str(port)], env=env)
    return Starting(proc, f"http://127.0.0.1:{port}/api")


@contextlib.contextmanager
def temporary_server(started: Starting | None = None) -> Iterator[str | None]:
    """Serve the API from a temporary server unless PREFECT_API_URL is set; yields its API URL (None
    when not started). `started`: a process from `start()` to wait for instead of launching one.
    Startup waits up to PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    if PREFECT_API_URL.value():
        if started is not None:
            _stop(started.proc)
        yield None
        return
    proc, url = _start(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()), started)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _flush_to_api()
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start(timeout_s: float, started: Starting | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    for _ in range(3):  # a port taken between the probe and the bind: try another
        server, started = started or start(), None  # a retry launches a new one
        proc, url = server.proc, server.url
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < timeout_s:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        if proc.poll() is None:
            _stop(proc)
            raise RuntimeError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s "
                               "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
    raise RuntimeError(f"the temporary Prefect server exited with code {proc.returncode}")


def _flush_to_api(timeout_s: float = 10.0) -> None:
    """Send Prefect's queued run logs and events while the server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s, at_exit=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the prctl: nothing will signal us
        sys.exit(0)


def main(argv: list[str]) -> None:
    parent, port = int(argv[0]), int(argv[1])
    _die_with_parent(parent)
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                log_level="error", lifespan="on")

