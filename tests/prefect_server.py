"""A real local Prefect server and `clutch serve`, started as a user starts them, for the deployment tests.

`local_prefect(folder, **env)` starts `prefect server start` on a free port with a throwaway
PREFECT_HOME (SQLite, unless `env` names another database) and yields a `LocalPrefect`:
`serve(name)` starts `clutch serve --only name` and waits until the deployment is registered,
`run(name, **params)` is `prefect deployment run name --param k=v ...`. Every process it
started is stopped on exit, the server last.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

BIN = Path(sys.executable).parent
# the server streams run logs to `--watch` only with these (README, "Running the flows as Prefect deployments")
WATCH_LOGS = {"PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true", "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, limit_s: float, what: str, log: Path | None = None, every_s: float = 1.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > limit_s:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise TimeoutError(f"timed out after {limit_s:.0f}s waiting for {what}\n{tail}")
        time.sleep(every_s)


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
    except Exception:
        return False


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    """In a session of its own: stop/kill reach the process and every child it starts (e.g. flow runs)."""
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(p: subprocess.Popen) -> None:
    """SIGTERM to p's process group, SIGKILL after 20 s."""
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            kill(p)


def kill(p: subprocess.Popen) -> None:
    """SIGKILL p's whole process group at once, as a crash or `kill -9` would: nothing gets to clean up.
    Returns when no member of the group runs any more (a survivor would go on writing the run)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    wait(lambda: not group_members(p.pid), 30, f"process group {p.pid} to end", every_s=0.2)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(stat.parent.name))
    return out


class LocalPrefect:
    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, []

    def serve(self, deployment: str, log_name: str = "serve.log") -> subprocess.Popen:
        """`clutch serve --only deployment`, once the deployment is registered."""
        log = self.logs / log_name
        p = start([str(BIN / "clutch"), "serve", "--only", deployment], self.env, log)
        self.procs.append(p)
        wait(lambda: subprocess.run([str(BIN / "prefect"), "deployment", "inspect", deployment], env=self.env,
                                    capture_output=True).returncode == 0, 240, deployment, log)
        return p

    def run(self, deployment: str, watch: bool = True, timeout_s: int = 600, **params) -> subprocess.CompletedProcess:
        """`prefect deployment run deployment --param k=<v as JSON> ... [--watch]`."""
        cmd = [str(BIN / "prefect"), "deployment", "run", deployment]
        if watch:
            cmd += ["--watch", "--watch-timeout", str(timeout_s)]
        for k, v in params.items():
            cmd += ["--param", f"{k}={json.dumps(v)}"]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout_s + 60)

    def log_tail(self, n: int = 3000) -> str:
        """The end of every log this harness wrote (server and serve), for assertion messages."""
        return "".join(f"\n--- {p.name}\n{p.read_text()[-n:]}" for p in sorted(self.logs.glob("*.log")))


@contextlib.contextmanager
def local_prefect(folder: Path, **env: str) -> Iterator[LocalPrefect]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    full = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_API_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false",
            "OMP_NUM_THREADS": "1", **WATCH_LOGS, **env}
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], full,
                   logs / "server.log")
    prefect = LocalPrefect(full, logs)
    try:
        wait(lambda: healthy(url), 240, "the Prefect server", logs / "server.log")
        yield prefect
    finally:
        for p in reversed(prefect.procs):
            stop(p)
        stop(server)
