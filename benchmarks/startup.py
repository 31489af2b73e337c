"""Time from `clutch build` to the flow's first task, cold (temporary Prefect server) and with
PREFECT_API_URL pointing at a running server (started here with `prefect server start`).

"First task" is the first task run of build-3dhiw entering Running, read from the server's
API after the build (its start_time) and compared with the moment the command was launched.

    python benchmarks/startup.py [--video V] [--runs 3] [--port 4299]

Prints a Markdown table with the CPU model, its bf16 support and the load average. Run it alone.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"
CLUTCH = str(Path(sys.executable).with_name("clutch"))


def first_task_start(api: str, flow_run_id: str | None = None) -> float:
    """Unix time when the newest build-3dhiw flow run's first task started."""
    import httpx

    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 1}).json()
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [runs[0]["id"]]}},
                                                         "sort": "EXPECTED_START_TIME_ASC", "limit": 200}).json()
    starts = [datetime.fromisoformat(t["start_time"]).timestamp() for t in tasks if t.get("start_time")]
    return min(starts)


def one_build(video: str, env: dict, api: str) -> tuple[float, float]:
    """(seconds to the first task, seconds of the whole command)."""
    out = tempfile.mkdtemp(prefix="startup-")
    try:
        t0 = time.time()
        subprocess.run([CLUTCH, "build", video, "--out", out, "--no-progress"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = time.time() - t0
        return first_task_start(api) - t0, total
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port", type=int, default=4299)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.shift import cpu_facts

    api = f"http://127.0.0.1:{args.port}/api"
    home = tempfile.mkdtemp(prefix="prefect-home-")  # one Prefect database for both modes
    base = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_API_PORT": str(args.port)}
    rows = {}
    # cold: the build starts its own temporary server; read its runs back through a server on the same DB
    cold_env = {k: v for k, v in base.items() if k != "PREFECT_API_URL"}
    server = None
    try:
        cold = [one_build_cold(args.video, cold_env, base, api) for _ in range(args.runs)]
        rows["cold (temporary server)"] = cold
        server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start",
                                   "--port", str(args.port)], env=base, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        wait_healthy(api)
        warm_env = {**base, "PREFECT_API_URL": api}
        rows["PREFECT_API_URL set (running server)"] = [one_build(args.video, warm_env, api) for _ in range(args.runs)]
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)
    f = cpu_facts()
    print(f"\nCPU: {f['cpu']}; native bf16: {f['native_bf16']}; load average (1 min): {f['load_avg_1min']:.2f}; "
          f"video {Path(args.video).name}; median of {args.runs}\n")
    print("| mode | command -> first task (s) | whole command (s) |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(a for a, _ in v):.2f} | {statistics.median(b for _, b in v):.2f} |")


def one_build_cold(video: str, env: dict, base: dict, api: str) -> tuple[float, float]:
    """A cold build; its flow run is then read from a server started on the same database."""
    t0 = time.time()
    out = tempfile.mkdtemp(prefix="startup-")
    try:
        subprocess.run([CLUTCH, "build", video, "--out", out, "--no-progress"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = time.time() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start",
                               "--port", str(int(api.rsplit(":", 1)[1].split("/")[0]))], env=base,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(api)
        return first_task_start(api) - t0, total
    finally:
        server.terminate()
        server.wait()


def wait_healthy(api: str, timeout: float = 120.0) -> None:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no Prefect server at {api} after {timeout:.0f} s")


if __name__ == "__main__":
    main()
