"""A dataset folder at an object-store URL (s3://bucket/ds, or any fsspec URL), through fsspec.

Why a local folder too: the ledger is SQLite, which needs a real file system (locks, WAL) and
object stores have neither. So a URL dataset is built in a local cache folder keyed by the URL
(CLUTCH_CACHE, default ~/.cache/clutch/datasets/) that records its URL in `remote.json`; every
shard is written there atomically as usual and then uploaded, and after each batch a snapshot
of the ledger is uploaded (write-through). The store holds shards/, ledger.sqlite (a snapshot)
and whatever else is uploaded the same way; readers (storage.catalog) read it in place.

An upload goes to a temporary key that does not match `*.parquet` and is moved to its final
key only once complete, so a writer killed mid-upload leaves no partial shard visible (on S3 an
object appears only when its upload completes; the move is a server-side copy).

Endpoint and credentials come from the usual places: AWS_ENDPOINT_URL (or FSSPEC_S3_ENDPOINT_URL),
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws; see docs/scaling.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import tempfile
from pathlib import Path

REMOTE_FILE = "remote.json"
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(location: str | os.PathLike) -> bool:
    """True for a store URL (s3://, gs://, memory://, ...); file:// and plain paths are local."""
    s = str(location)
    return bool(_URL_RE.match(s)) and not s.startswith("file://")


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a URL; s3 also honours AWS_ENDPOINT_URL."""
    import fsspec

    protocol = url.split("://", 1)[0]
    options = {}
    if protocol in ("s3", "s3a") and os.environ.get("AWS_ENDPOINT_URL") and not os.environ.get("FSSPEC_S3_ENDPOINT_URL"):
        options["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    return fsspec.core.url_to_fs(url, **options)


def cache_folder(url: str) -> Path:
    """The local folder that holds the ledger (and a copy of the shards) of dataset URL `url`."""
    root = Path(os.environ.get("CLUTCH_CACHE", Path.home() / ".cache" / "clutch")) / "datasets"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", url.split("://", 1)[1]).strip("_")[-80:]
    return root / f"{name}-{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:12]}"


def local_folder(url: str) -> Path:
    """Local working folder of dataset URL `url`, bound to it (remote.json); a new one starts from
    the store's ledger snapshot and shards, so a build resumes on any machine."""
    url = url.rstrip("/")
    d = cache_folder(url)
    marker = d / REMOTE_FILE
    if not marker.exists():
        d.mkdir(parents=True, exist_ok=True)
        pull(url, d)
        marker.write_text(json.dumps({"url": url}) + "\n")
    return d


def remote_of(dataset_dir: str | os.PathLike) -> str | None:
    """The URL a local dataset folder writes through to, or None (a plain local dataset)."""
    p = Path(dataset_dir) / REMOTE_FILE
    return json.loads(p.read_text())["url"] if p.exists() else None


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def upload(local: str | os.PathLike, url: str) -> None:
    """Copy a local file to `url`, visible there only when complete (temporary key, then a move)."""
    fs, path = filesystem(url)
    parent, name = path.rsplit("/", 1)
    tmp = f"{parent}/.{name}.upload-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fs.put_file(str(local), tmp)
        fs.mv(tmp, path)
    except BaseException:
        try:
            fs.rm(tmp)
        except (OSError, FileNotFoundError):
            pass
        raise


def push_file(dataset_dir: str | os.PathLike, local: str | os.PathLike) -> None:
    """Upload DATASET/<relative path> to the same relative key of the dataset's URL, if it has one."""
    url = remote_of(dataset_dir)
    if url is not None:
        upload(local, join(url, *Path(local).relative_to(dataset_dir).parts))


def push_ledger(dataset_dir: str | os.PathLike) -> None:
    """Upload a consistent snapshot of DATASET/ledger.sqlite (SQLite's backup API), if the dataset has a URL."""
    from storage.ledger import LEDGER_FILE

    url = remote_of(dataset_dir)
    src = Path(dataset_dir) / LEDGER_FILE
    if url is None or not src.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / LEDGER_FILE
        a, b = sqlite3.connect(src), sqlite3.connect(snap)
        try:
            a.backup(b)
        finally:
            a.close()
            b.close()
        upload(snap, join(url, LEDGER_FILE))


def pull(url: str, dest: str | os.PathLike) -> list[str]:
    """Download the ledger snapshot and the shards of dataset URL `url` that `dest` lacks; -> names fetched."""
    from storage.ledger import LEDGER_FILE
    from storage.writer import SHARDS_DIR

    fs, root = filesystem(url)
    dest = Path(dest)
    got = []
    wanted = [(join(root, LEDGER_FILE), dest / LEDGER_FILE)]
    wanted += [(p, dest / SHARDS_DIR / p.rsplit("/", 1)[1]) for p in shard_keys(url)]
    for key, local in wanted:
        if local.exists() or not fs.exists(key):
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(f".{local.name}.download-{os.getpid()}")
        fs.get_file(key, str(part))
        os.replace(part, local)
        got.append(local.name)
    return got


def shard_keys(url: str) -> list[str]:
    """Complete shards at a dataset URL (paths inside its filesystem), sorted."""
    from storage.writer import SHARDS_DIR

    fs, root = filesystem(url)
    return sorted(fs.glob(join(root, SHARDS_DIR, "part-*.parquet")))


def read_ledger_snapshot(url: str):
    """The ledger snapshot at a dataset URL as an Arrow table (empty when there is none)."""
    from storage.ledger import LEDGER_FILE, Ledger, ledger_arrow_schema

    fs, root = filesystem(url)
    key = join(root, LEDGER_FILE)
    if not fs.exists(key):
        return ledger_arrow_schema().empty_table()
    with tempfile.TemporaryDirectory() as tmp:
        fs.get_file(key, str(Path(tmp) / LEDGER_FILE))
        return Ledger(tmp).to_arrow()
