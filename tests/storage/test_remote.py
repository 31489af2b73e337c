"""Datasets on object storage: a real S3 API (moto in server mode) through s3fs.

`clutch build --out s3://...` writes shards and a ledger snapshot there, `clutch query s3://...` and
storage.catalog read them in place, and a writer killed mid-upload leaves no partial shard visible.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = [pytest.mark.slow]
CLUTCH = Path(sys.executable).with_name("clutch")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server; yields the environment that points clients at it (and a bucket name)."""
    try:
        import moto  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        require(False, "moto[server] and s3fs are not installed (pip install -e '.[dev]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "CLUTCH_CACHE": str(tmp_path_factory.mktemp("clutch_cache"))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import s3fs

        deadline = time.monotonic() + 60
        while True:
            try:
                s3fs.S3FileSystem(skip_instance_cache=True).mkdir("clutch-test")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield env
    finally:
        server.terminate()
        server.wait(10)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fs():
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def _synth_at(url: str, clips: int, seed: int) -> Path:
    from clutch_core.synth import SynthConfig, write_corpus
    from storage.remote import local_folder, push_ledger

    d = local_folder(url)
    write_corpus(d, SynthConfig(clips=clips, seed=seed, clips_per_shard=8))
    push_ledger(d)
    return d


def test_build_writes_to_s3_and_query_reads_there(s3, shared_data, tmp_path):
    """The must-show: `clutch build VIDEOS --out s3://bucket/ds`, then `clutch query s3://bucket/ds ...`."""
    video = shared_data / "videos" / "ego_kitchen_4s.mp4"
    url = "s3://clutch-test/built"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    b = subprocess.run([str(CLUTCH), "build", str(video), "--out", url, "--no-progress"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    assert b.returncode == 0, b.stdout.decode(errors="replace")[-3000:]
    keys = _fs().glob("clutch-test/built/shards/part-*.parquet")
    assert keys and _fs().exists("clutch-test/built/ledger.sqlite")
    q = subprocess.run([str(CLUTCH), "query", url, "SELECT count(*) AS n FROM clips", "--format", "json"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert q.returncode == 0, q.stderr.decode()
    n = json.loads(q.stdout)[0]["n"]
    from storage.catalog import connect
    from storage.remote import cache_folder

    local = connect(cache_folder(url)).execute("SELECT count(*) FROM clips").fetchone()[0]
    assert n == local > 0
    con = connect(url)
    assert con.execute("SELECT state, count(*) FROM ledger GROUP BY state").fetchall() == [("done", 1)]


def test_catalog_reads_the_store_and_a_fresh_cache_pulls_it(s3, tmp_path):
    from storage.catalog import connect
    from storage.remote import cache_folder, local_folder

    url = "s3://clutch-test/synth"
    d = _synth_at(url, clips=20, seed=1)
    here = connect(d).execute("SELECT count(*), count(DISTINCT clip_id) FROM clips").fetchone()
    there = connect(url)
    assert there.execute("SELECT count(*), count(DISTINCT clip_id) FROM clips").fetchone() == here == (20, 20)
    assert there.execute("SELECT count(*) FROM captions").fetchone()[0] > 0
    assert there.execute("SELECT count(*) FROM ledger WHERE state = 'done'").fetchone()[0] > 0
    # another machine (an empty cache) starts from the store's ledger and shards
    import shutil

    shutil.rmtree(cache_folder(url))
    again = local_folder(url)
    assert connect(again).execute("SELECT count(*) FROM clips").fetchone()[0] == 20
    with pytest.raises(FileNotFoundError, match="does not exist"):
        connect("s3://clutch-test/nothing-here")


# The child writes one more shard to a dataset bound to the store and hangs once the shard's bytes
# are uploaded under the temporary key and before the move to its final key (a slow or dying
# network at the worst moment); the test then SIGKILLs it.
_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import pyarrow.parquet as pq
    import s3fs
    from storage.writer import list_shards, write_shard

    def hang(self, *a, **k):
        print("UPLOADED", flush=True)
        time.sleep(600)

    s3fs.S3FileSystem._cp_file = hang
    write_shard(sys.argv[1], "extra", table=pq.read_table(list_shards(sys.argv[1])[0]))
""")


def test_sigkill_during_upload_leaves_no_partial_shard(s3, tmp_path):
    from storage.catalog import connect
    from storage.remote import shard_keys

    url = "s3://clutch-test/killed"
    d = _synth_at(url, clips=10, seed=1)
    before = shard_keys(url)
    p = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(d)], stdout=subprocess.PIPE,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    line = p.stdout.readline()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert line.strip() == b"UPLOADED", "the writer did not reach the upload"
    temps = [k for k in _fs().find("clutch-test/killed/shards") if ".upload-" in k]
    assert temps, "the upload's temporary object should exist (the kill came mid-upload)"
    assert shard_keys(url) == before  # no new, and no partial, shard under the glob
    assert connect(url).execute("SELECT count(*) FROM clips").fetchone()[0] == 10
