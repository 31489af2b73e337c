"""The dataset side of `clutch view`: clips picked with SQL, their rows, source frames and facts.

The filter is a DuckDB WHERE clause over the `clips` view of storage.catalog (`quality.presence_left
> 0.5`, `clip_id IN (SELECT clip_id FROM captions WHERE text ILIKE '%wave%')`). The connection may
read only the dataset's folder and its settings are locked: a filter typed in the browser cannot
read other files, even when the viewer is served beyond this machine.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_LISTED = 1000  # clip ids offered by the picker at once


class ClipCatalog:
    """SQL over one dataset's clips, one query at a time."""

    def __init__(self, dataset: str | Path):
        from storage.catalog import connect

        self.dataset = Path(dataset)
        self._con = connect(self.dataset)
        folder = str(self.dataset.resolve()).replace("'", "''")
        self._con.execute(f"SET allowed_directories = ['{folder}/']")
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self._lock = threading.Lock()
        self.total = self._con.execute("SELECT count(*) FROM clips").fetchall()[0][0]

    def clip_ids(self, where: str | None) -> tuple[list[str], int]:
        """(first MAX_LISTED clip ids by id, number of clips) that match a WHERE clause; ValueError names
        the filter and DuckDB's complaint."""
        import duckdb

        cond = (where or "").strip() or "true"
        sql = f"FROM clips WHERE ({cond})"
        with self._lock:
            try:
                if len(self._con.extract_statements(f"SELECT 1 {sql}")) != 1:
                    raise ValueError("one expression, no ';'")
                n = self._con.execute(f"SELECT count(*) {sql}").fetchall()[0][0]
                ids = [r[0] for r in self._con.execute(f"SELECT clip_id {sql} ORDER BY clip_id LIMIT {MAX_LISTED}")
                       .fetchall()]
            except (duckdb.Error, ValueError) as e:
                raise ValueError(f"--where {where!r}: not a filter over the clips view ({_first_line(e)})") from None
        return ids, n

    def row(self, clip_id: str) -> dict:
        from storage.catalog import fetch_clips
        from storage.schema import table_to_rows

        with self._lock:
            rows = table_to_rows(fetch_clips(self._con, self.dataset, [clip_id]))
        if not rows:
            raise KeyError(f"no clip {clip_id!r} in {self.dataset}")
        return rows[0]


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def describe(row: dict) -> str:
    """Markdown facts of a clip: captions by source, length, split, tracker, every quality field."""
    caps = "\n".join(f"- **{c['source']}**: {c['text']}" for c in row.get("captions") or []) or "- none"
    quality = row.get("quality") or {}
    q = "\n".join(f"| {k} | {_num(v)} |" for k, v in quality.items())
    tracker = row.get("tracker") or {}
    return (f"**{row['clip_id']}** ({row.get('split', '?')}), {int(row['num_frames'])} frames = "
            f"{int(row['num_frames']) / float(row.get('fps') or 15):.1f} s, {row.get('pose_convention', '?')}, "
            f"tracker {tracker.get('name', '?')} {tracker.get('version', '')}\n\n"
            f"Captions:\n{caps}\n\n| quality | value |\n|---|---|\n{q}\n\n"
            f"Source: `{row.get('source_uri', '')}` at {float(row.get('start_s') or 0):.2f} s")


def _num(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


class SourceVideo:
    """The clip's source frames on its 15 fps timeline, with the 2D keypoints drawn on request."""

    def __init__(self, frames: list[np.ndarray], row: dict):
        self.frames = frames
        self.keypoints = np.asarray(row["keypoints2d"], np.float32)
        self.presence = np.asarray(row["presence"], bool)
        self.image_size = row.get("image_size")

    @classmethod
    def open(cls, row: dict, dataset: Path | None, height: int = 270) -> "SourceVideo | None":
        """None when the video is not reachable (synthetic clips, moved or unreadable files)."""
        from clutch_core.render.render import source_frames

        frames = source_frames(row, height, dataset)
        if frames is None:
            return None
        try:
            return cls([np.ascontiguousarray(f) for f in frames], row)
        except Exception as e:  # noqa: BLE001 - a video that breaks mid-way is shown without frames
            log.warning("source video of %s not readable: %s", row.get("clip_id"), e)
            return None

    def frame(self, t: int) -> np.ndarray:
        """Frame t with the keypoints of the present hands (colours of `clutch render`)."""
        from clutch_core.render.render import draw_keypoints_2d

        t = min(int(t), len(self.frames) - 1)
        img = self.frames[t].copy()
        if self.image_size is not None and t < len(self.keypoints):
            sx, sy = img.shape[1] / float(self.image_size[0]), img.shape[0] / float(self.image_size[1])
            draw_keypoints_2d(img, self.keypoints[t], self.presence[t], (sx, sy))
        return img
