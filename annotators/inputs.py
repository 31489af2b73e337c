"""What to build from: video files, folders, globs or a manifest table -> VideoInput list.

A build's `videos` argument is a list of specs, each one of:
- a video file (any extension: a bad file is quarantined later, not refused here);
- a folder (searched recursively for VIDEO_EXTENSIONS);
- a glob (`data/**/*.mp4`);
- a manifest table (.csv, .parquet, .pq) with a `path` column and optional `video_id`
  and camera intrinsics `fx, fy, cx, cy` (pixels); relative paths are relative to the
  manifest's folder.

Each video is identified by its content hash (annotators.discovery.video_id) unless the
manifest gives a `video_id`; the same content listed twice is built once.
"""
from __future__ import annotations

import glob
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from annotators.discovery import Segment, load_narrations, narrations_for, video_id

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
MANIFEST_EXTENSIONS = (".csv", ".parquet", ".pq")
INTRINSICS = ("fx", "fy", "cx", "cy")


class InputError(ValueError):
    """A video spec or manifest the user must fix (missing path, bad column); names the file."""


@dataclass(frozen=True)
class VideoInput:
    """One video to build: where it is, its id, and what the caller knows about it."""

    path: str  # absolute
    video_id: str
    intrinsics: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy in pixels
    name: str | None = None  # key into a narration table (manifest video_id, else the file stem)
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) when its id was taken (None: not recorded)

    def changed(self, settle_s: float = 0.0) -> str | None:
        """Why the file is not the one discovered (grown, rewritten, gone), or None if it is unchanged.

        A file still being copied when the build found it has an id of a partial content: its clips
        must not be kept (the next build sees the whole file, under its own id). With `settle_s`, a
        file written to less than that long ago is first given the rest of that time to change (a
        copy between two writes looks whole for a moment: asked before a file is judged unreadable)."""
        if self.stamp is None:
            return None
        if settle_s > 0:
            import time

            age = time.time() - self.stamp[1] / 1e9
            if age < settle_s:
                time.sleep(settle_s - max(age, 0.0))
        try:
            now = _stamp(Path(self.path))
        except FileNotFoundError:
            return f"{self.path}: removed since the build found it"
        if now != self.stamp:
            return (f"{self.path}: changed since the build found it ({self.stamp[0]} -> {now[0]} bytes; "
                    "still being written?)")
        return None


class StillWriting(InputError):
    """A file changed while its content id was taken: it is still being written (skipped this build)."""


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def discover_inputs(specs: Iterable[str]) -> list[VideoInput]:
    """Expand specs into unique videos, in the order given (first occurrence wins)."""
    out: dict[str, VideoInput] = {}
    for spec in specs:
        for v in _expand(str(spec)):
            if isinstance(v, StillWriting):
                log.warning("skipping %s; the next build takes it", v)
                continue
            if v.video_id in out:
                log.info("skipping %s: same content as %s", v.path, out[v.video_id].path)
                continue
            out[v.video_id] = v
    return list(out.values())


def check_specs(specs: Iterable[str]) -> None:
    """Cheap up-front check (no hashing): every non-glob spec exists."""
    for spec in specs:
        if not any(c in str(spec) for c in "*?[") and not Path(spec).expanduser().exists():
            raise InputError(f"video or manifest not found: {spec}")


def _expand(spec: str) -> list[VideoInput]:
    p = Path(spec).expanduser()
    if any(c in spec for c in "*?["):
        hits = sorted(glob.glob(str(p), recursive=True))
        if not hits:
            raise InputError(f"no file matches {spec!r}")
        return [_found(Path(h)) for h in hits if Path(h).is_file()]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            log.warning("folder %s holds no video (%s)", p, ", ".join(VIDEO_EXTENSIONS))
        return [_found(f) for f in files]
    if not p.exists():
        raise InputError(f"video or manifest not found: {p}")
    if p.suffix.lower() in MANIFEST_EXTENSIONS:
        return read_manifest(p)
    return [_found(p)]


def _found(path: Path) -> "VideoInput | StillWriting":
    """A discovered file, or the StillWriting that says why it is skipped this time."""
    try:
        return _video(path)
    except StillWriting as e:
        return e


def _video(path: Path, vid: str | None = None, intrinsics=None) -> VideoInput:
    """The file with its content id, stamped (size, mtime) before and after hashing: a file that changed
    meanwhile is still being written (StillWriting)."""
    path = path.resolve()
    if not path.is_file():
        raise InputError(f"video not found: {path}")
    before = _stamp(path)
    vid_ = vid or video_id(path)
    after = _stamp(path)
    if after != before:
        raise StillWriting(f"{path}: still being written (its size went from {before[0]} to {after[0]} bytes "
                           "while the build read it)")
    return VideoInput(str(path), vid_, intrinsics, vid or path.stem, after)


def read_manifest(path: str | Path) -> list[VideoInput]:
    """Rows of a CSV/Parquet manifest -> VideoInput (errors name the manifest and row)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={"path": "string", "video_id": "string"}))
        else:
            table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for unreadable tables
        raise InputError(f"manifest {path}: cannot read it as a table ({e})") from e
    if "path" not in table.column_names:
        raise InputError(f"manifest {path}: needs a 'path' column (has {table.column_names})")
    given = [c for c in INTRINSICS if c in table.column_names]
    if given and len(given) != len(INTRINSICS):
        raise InputError(f"manifest {path}: intrinsics need all of {INTRINSICS}, found only {given}")
    out = []
    for i, row in enumerate(table.to_pylist(), start=2 if path.suffix.lower() == ".csv" else 0):
        where = f"manifest {path}, row {i}"
        if not row["path"]:
            raise InputError(f"{where}: empty path")
        p = Path(str(row["path"])).expanduser()
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise InputError(f"{where}: video not found: {p}")
        try:
            out.append(_video(p, (row.get("video_id") or None) and str(row["video_id"]).strip(),
                              _intrinsics(row, where) if given else None))
        except StillWriting as e:
            log.warning("skipping %s (%s); the next build takes it", e, where)
    return out


def _intrinsics(row: dict, where: str) -> tuple[float, float, float, float] | None:
    vals = [row[c] for c in INTRINSICS]
    if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
        return None  # this row has no calibration: the tracker's default applies
    try:
        fx, fy, cx, cy = (float(v) for v in vals)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: intrinsics {dict(zip(INTRINSICS, vals))} are not numbers") from e
    if not (fx > 0 and fy > 0 and cx >= 0 and cy >= 0):
        raise InputError(f"{where}: intrinsics need fx, fy > 0 and cx, cy >= 0, got {(fx, fy, cx, cy)}")
    return fx, fy, cx, cy


def narration_table(path: str | None) -> dict[str, list[Segment]]:
    """The narration file's segments by video name ({} without a file)."""
    return load_narrations(path) if path else {}


def segments_for(video: VideoInput, table: dict[str, list[Segment]]) -> list[Segment] | None:
    """Narrated segments of one video: by its manifest id / file stem, else by content id."""
    return table.get(video.name or "") or narrations_for(video.path, table) or table.get(video.video_id)
