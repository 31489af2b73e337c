"""Video identity and narration files.

`video_id` is a content hash so that renaming or moving a file never makes the
builder process it twice: sha256 over the file size, the first and last MiB and 32
evenly spaced 64 KiB blocks (at most ~4 MiB read per file, so discovering terabytes of
video stays fast; compressed video of equal size that agrees on all sampled blocks does
not occur in practice). Files up to 8 MiB are hashed whole. The first 16 hex digits are
the id.

Narrations map a video id (the file stem of the video) to time segments with text:
- EPIC-KITCHENS-100-style CSV: columns video_id, start_timestamp, stop_timestamp,
  narration (verb, noun optional); timestamps HH:MM:SS.ff (or plain seconds).
- Ego4D-style JSON: {video_uid: {"narration_pass_1": {"narrations": [{"timestamp_sec",
  "narration_text"}, ...]}}} (point narrations; each becomes a window of
  `point_window_s` centred on its time), or a plain list of {"video_id", "start_s",
  "end_s", "text"} records.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

_MIB = 1 << 20
_SAMPLES, _SAMPLE = 32, 64 << 10


@dataclass(frozen=True)
class Segment:
    """One narrated time span of a video (seconds from the start of the video)."""

    start_s: float
    end_s: float
    text: str


def video_id(path: str | Path) -> str:
    """Content hash of a file (size + sampled blocks): the same bytes give the same id under any name."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode() + b"\0")
    with open(p, "rb") as f:
        if size <= 8 * _MIB:
            h.update(f.read())
        else:
            spans = [(0, _MIB), (size - _MIB, _MIB)]
            spans += [(size * (i + 1) // (_SAMPLES + 1), _SAMPLE) for i in range(_SAMPLES)]
            for off, n in spans:
                f.seek(off)
                h.update(f.read(n))
    return h.hexdigest()[:16]


def parse_timestamp(value: str | float) -> float:
    """'HH:MM:SS.ff', 'MM:SS.ff' or plain seconds -> seconds."""
    s = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s)
    parts = s.split(":")
    if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"\d+(\.\d+)?", x) for x in parts):
        raise ValueError(f"not a timestamp: {value!r} (expected HH:MM:SS.ff)")
    secs = 0.0
    for x in parts:
        secs = secs * 60 + float(x)
    return secs


def _epic_csv(path: Path) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"video_id", "start_timestamp", "stop_timestamp", "narration"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: narration CSV lacks columns {sorted(missing)}")
        for row in reader:
            a, b = parse_timestamp(row["start_timestamp"]), parse_timestamp(row["stop_timestamp"])
            text = (row.get("narration") or "").strip()
            if text and b > a:
                out.setdefault(row["video_id"].strip(), []).append(Segment(a, b, text))
    return out


def _ego4d_json(path: Path, point_window_s: float) -> dict[str, list[Segment]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, list[Segment]] = {}
    if isinstance(data, list):  # flat records
        for r in data:
            seg = Segment(float(r["start_s"]), float(r["end_s"]), str(r["text"]).strip())
            out.setdefault(str(r["video_id"]), []).append(seg)
        return out
    videos = data.get("videos", data) if isinstance(data, dict) else {}
    for vid, entry in videos.items():
        passes = [v for k, v in entry.items() if k.startswith("narration_pass")] if isinstance(entry, dict) else []
        for p in passes:
            for n in p.get("narrations", []):
                t = float(n["timestamp_sec"])
                text = re.sub(r"^#\w\s*", "", str(n.get("narration_text", ""))).strip()  # drop '#C ' tags
                if text:
                    a = max(0.0, t - point_window_s / 2)
                    out.setdefault(vid, []).append(Segment(a, t + point_window_s / 2, text))
    return out


def load_narrations(path: str | Path, point_window_s: float = 4.0) -> dict[str, list[Segment]]:
    """Read a narration file (CSV or JSON) -> {video_id (file stem): segments sorted by start}."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"narration file not found: {p}")
    table = _epic_csv(p) if p.suffix.lower() == ".csv" else _ego4d_json(p, point_window_s)
    return {k: sorted(v, key=lambda s: (s.start_s, s.end_s)) for k, v in table.items()}


def narrations_for(video_path: str | Path, table: dict[str, list[Segment]]) -> list[Segment] | None:
    """Segments of one video, matched by file stem (EPIC/Ego4D name videos by their id)."""
    return table.get(Path(video_path).stem)
