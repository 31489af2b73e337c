"""Prefect on PostgreSQL: two concurrent build-3dhiw/local runs through a real server.

Starts a throwaway PostgreSQL cluster (Debian's `postgresql`), a `prefect server` whose
database is that cluster, and `clutch serve`; then runs the deployment twice at once on
different videos. SQLite says "database is locked" under such load: PostgreSQL must not.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.flow_videos import make_videos
from tests.fixtures.prefect_server import BIN, free_port, local_prefect

pytestmark = [pytest.mark.slow]


def _pg_bin() -> Path | None:
    """Folder of initdb/pg_ctl: PATH first, then Debian's versioned folders."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists():
            return d
    return None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture()
def postgres():
    pg = _pg_bin()
    if pg is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # Outside pytest's root-only temp folder: the `postgres` user must reach it.
    root = Path(tempfile.mkdtemp(prefix="clutch-pg-"))
    data, sock = root / "data", root / "sock"
    data.mkdir()
    sock.mkdir()
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        for d in (data, sock):
            shutil.chown(d, "postgres")
    port = free_port()
    subprocess.run(_as_postgres_user([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8"]), check=True, capture_output=True)
    log = data / "server.log"
    subprocess.run(_as_postgres_user([str(pg / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                      "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 "
                                            "-c max_connections=200", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(_as_postgres_user([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                                          "-U", "postgres", "prefect"]), check=True, capture_output=True)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(_as_postgres_user([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_concurrent_builds_on_postgres(postgres, shared_data, tmp_path):
    vids = make_videos(shared_data / "videos" / "ego_kitchen_4s.mp4", tmp_path / "videos", ["kitchen_a", "kitchen_c"])
    with local_prefect(tmp_path, PREFECT_API_DATABASE_CONNECTION_URL=postgres) as prefect:
        prefect.serve("build-3dhiw/local")
        outs = {name: tmp_path / f"ds_{name}" for name in vids}
        runs = {name: subprocess.Popen(
            [str(BIN / "prefect"), "deployment", "run", "build-3dhiw/local",
             "--param", f"videos={json.dumps([str(path)])}", "--param", f"out={outs[name]}", "--watch",
             "--watch-timeout", "600"],
            env=prefect.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name, path in vids.items()}
        texts = {name: p.communicate(timeout=660)[0] for name, p in runs.items()}
    served = "".join(p.read_text() for p in sorted(prefect.logs.glob("*.log")))
    for name, text in texts.items():
        assert runs[name].returncode == 0 and "Completed" in text, f"{name}: {text[-2000:]}\n{served[-3000:]}"
        assert list((outs[name] / "shards").glob("part-*.parquet")), f"{name}: no shard written\n{text[-3000:]}"
    assert "database is locked" not in served
    # The server really used PostgreSQL: no SQLite database was created in PREFECT_HOME.
    assert not list((tmp_path / "prefect").glob("*.db"))
