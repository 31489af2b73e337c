"""Decode a video at reduced resolution, resample it to 15 fps, and cut clips.

Readers: decord (default; it resizes inside the decoder) with PyAV as the fallback when
decord cannot open the file. Both stream frames in order, a few dozen at a time, so
memory stays bounded whatever the length of the video. Every file is first probed with
PyAV (headers only): a file that is not a decodable video raises BadVideoError before a
decoder touches it.

Resampling uses each frame's presentation timestamp, not its index: output frame k shows
the source frame on screen at time t0 + k / fps, so variable-frame-rate video comes out
at a true 15 fps (frames are repeated or skipped as needed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from annotators.errors import BadVideoError

_STILL_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")  # demuxers of single pictures
_STILL_CODECS = ("mjpeg", "png", "bmp", "tiff", "webp", "gif", "jpeg2000")


@dataclass(frozen=True)
class VideoInfo:
    """What a header probe tells: source size, codec and container."""

    path: str
    width: int
    height: int
    codec: str
    container: str
    frames_hint: int  # from the header; 0 when unknown


@dataclass(frozen=True)
class ClipPolicy:
    """How clips are cut (all lengths in output frames at `fps`)."""

    fps: float = 15.0
    min_s: float = 1.0
    max_frames: int = 144
    merge_gap_frames: int = 8  # hand-free gaps up to this long do not split a span

    @property
    def min_frames(self) -> int:
        return max(1, math.ceil(self.min_s * self.fps - 1e-9))


class FrameReader(Protocol):
    name: str  # 'decord' | 'pyav'
    path: str
    timestamps: np.ndarray  # [N] float64 seconds, presentation order
    size: tuple[int, int]  # (width, height) of the frames it yields

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (index, RGB uint8 [h, w, 3]) for sorted unique source indices."""


def probe(path: str | Path, min_side: int = 32, max_side: int = 8192) -> VideoInfo:
    """Header-only check with PyAV; raises BadVideoError naming the problem."""
    import av

    p = Path(path)
    if not p.is_file():
        raise BadVideoError(p, "file not found")
    if p.stat().st_size == 0:
        raise BadVideoError(p, "empty file (0 bytes)")
    try:
        with av.open(str(p), metadata_errors="ignore") as c:
            fmt = c.format.name
            if not c.streams.video:
                raise BadVideoError(p, f"no video stream (container {fmt!r})")
            s = c.streams.video[0]
            if s.codec_context is None:
                raise BadVideoError(p, f"unknown codec: no decoder for the video stream (container {fmt!r})")
            codec = s.codec_context.name
            w, h, n = int(s.width or 0), int(s.height or 0), int(s.frames or 0)
    except BadVideoError:
        raise
    except Exception as e:  # av.error.* for garbage, truncated headers, unknown containers
        raise BadVideoError(p, f"not a readable video ({type(e).__name__}: {e})") from None
    if any(k in fmt for k in _STILL_FORMATS) or (codec in _STILL_CODECS and n <= 1):
        raise BadVideoError(p, f"a still image ({fmt}/{codec}), not a video")
    if min(w, h) < min_side:
        raise BadVideoError(p, f"resolution {w}x{h} too small (min side {min_side} px)")
    if max(w, h) > max_side:
        raise BadVideoError(p, f"resolution {w}x{h} too large (max side {max_side} px)")
    return VideoInfo(str(p), w, h, codec, fmt, n)


def decode_size(width: int, height: int, short_side: int = 480, max_long_side: int = 960) -> tuple[int, int]:
    """Even (w, h) no larger than the source, short side <= short_side, long side <= max_long_side."""
    s = min(1.0, short_side / min(width, height), max_long_side / max(width, height))
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


class DecordReader:
    """decord.VideoReader resizing in the decoder; frames read in batches of `batch`."""

    name = "decord"

    def __init__(self, path: str, size: tuple[int, int], batch: int = 32):
        import decord

        self._vr = decord.VideoReader(path, width=size[0], height=size[1], num_threads=2)
        n = len(self._vr)
        if n == 0:
            raise RuntimeError("decord found no frames")
        self.timestamps = np.asarray(self._vr.get_frame_timestamp(np.arange(n)), np.float64)[:, 0]
        self.size, self._batch, self.path = size, batch, path

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        idx = list(indices)
        for i in range(0, len(idx), self._batch):
            part = idx[i:i + self._batch]
            try:
                frames = self._vr.get_batch(part).asnumpy()  # [b, h, w, 3]
            except Exception as e:
                raise BadVideoError(self.path, f"decode failed near frame {part[0]} (decord: {e})") from None
            if len(frames) != len(part):
                raise BadVideoError(self.path, f"truncated: frames {part[0]}..{part[-1]} cannot be decoded")
            yield from zip(part, frames)


class PyAVReader:
    """PyAV, one sequential decode; timestamps from a packet-only demux pass."""

    name = "pyav"

    def __init__(self, path: str, size: tuple[int, int]):
        import av

        self.path, self.size = path, size
        with av.open(path) as c:
            s = c.streams.video[0]
            tb = float(s.time_base)
            pts = sorted({p.pts for p in c.demux(s) if p.pts is not None and p.size > 0})
        if not pts:
            raise BadVideoError(path, "no decodable video packets")
        self._pts_index = {p: i for i, p in enumerate(pts)}
        self.timestamps = np.asarray(pts, np.float64) * tb

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        import av

        want = set(int(i) for i in indices)
        if not want:
            return
        last = max(want)
        w, h = self.size
        try:
            with av.open(self.path) as c:
                s = c.streams.video[0]
                s.thread_type = "AUTO"
                for frame in c.decode(s):
                    i = self._pts_index.get(frame.pts)
                    if i is None:
                        continue
                    if i in want:
                        yield i, frame.to_ndarray(width=w, height=h, format="rgb24")
                    if i >= last:
                        return
        except av.error.FFmpegError as e:
            raise BadVideoError(self.path, f"decode failed (pyav: {e})") from None


def open_reader(info: VideoInfo, size: tuple[int, int], prefer: str = "decord") -> FrameReader:
    """decord when it opens the file, else PyAV (the reader's `name` records which)."""
    if prefer == "decord":
        try:
            return DecordReader(info.path, size)
        except BadVideoError:
            raise
        except Exception:
            pass  # decord cannot open some containers/codecs: PyAV below
    try:
        return PyAVReader(info.path, size)
    except BadVideoError:
        raise
    except Exception as e:
        raise BadVideoError(info.path, f"cannot decode video ({type(e).__name__}: {e})") from None


def resample_indices(timestamps: np.ndarray, fps: float) -> np.ndarray:
    """Source frame index shown at each output time t0 + k/fps ([K] int64, non-decreasing)."""
    ts = np.asarray(timestamps, np.float64)
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    last_dur = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0 / fps
    end = ts[-1] + max(last_dur, 0.0)
    k = int(math.floor((end - ts[0] + 2e-3) * fps))  # 2 ms: millisecond timestamps round
    t = ts[0] + np.arange(k) / fps
    return np.clip(np.searchsorted(ts, t + 1e-6, side="right") - 1, 0, len(ts) - 1).astype(np.int64)


def iter_resampled(reader: FrameReader, src_index: np.ndarray, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first output frame, RGB uint8 [n<=chunk, h, w, 3]) over the resampled timeline."""
    uniq = np.unique(src_index)
    frames = reader.iter_frames(uniq.tolist())
    cache: dict[int, np.ndarray] = {}
    for k0 in range(0, len(src_index), chunk):
        need = src_index[k0:k0 + chunk]
        while need[-1] not in cache:
            got = next(frames, None)
            if got is None:  # the container lists frames its data no longer holds
                raise BadVideoError(reader.path, f"truncated or corrupt: frame {int(need[-1])} of "
                                                 f"{len(reader.timestamps)} cannot be decoded")
            cache[got[0]] = got[1]
        out = np.stack([cache[int(i)] for i in need])
        keep = int(need[-1])
        cache = {i: f for i, f in cache.items() if i >= keep}  # only the last one may repeat
        yield k0, out


def presence_spans(present: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """[start, end) runs of True, joining runs separated by at most merge_gap False frames."""
    spans: list[list[int]] = []
    for k in np.flatnonzero(present):
        if spans and k - spans[-1][1] <= merge_gap:
            spans[-1][1] = int(k) + 1
        else:
            spans.append([int(k), int(k) + 1])
    return [(a, b) for a, b in spans]


def split_windows(start: int, end: int, max_frames: int) -> list[tuple[int, int]]:
    """Split [start, end) into the fewest near-equal windows of at most max_frames."""
    n = end - start
    if n <= 0:
        return []
    parts = math.ceil(n / max_frames)
    edges = [start + round(i * n / parts) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def plan_clips(
    num_frames: int,
    present: np.ndarray,
    policy: ClipPolicy,
    segments: Sequence[tuple[float, float, str]] | None = None,
) -> tuple[list[tuple[int, int, str | None]], list[tuple[str, int]]]:
    """Clips as (start, end, narration or None) in output frames, plus (reason, count) drops.

    With narration segments, clips follow the segments (long ones split into windows);
    otherwise they follow hand-present spans.
    """
    windows: list[tuple[int, int, str | None]] = []
    if segments:
        for a_s, b_s, text in segments:
            a = max(0, int(round(a_s * policy.fps)))
            b = min(num_frames, int(round(b_s * policy.fps)))
            windows += [(x, y, text) for x, y in split_windows(a, b, policy.max_frames)]
    else:
        for a, b in presence_spans(present, policy.merge_gap_frames):
            windows += [(x, y, None) for x, y in split_windows(a, b, policy.max_frames)]
    keep = [w for w in windows if w[1] - w[0] >= policy.min_frames]
    dropped = [("too_short", len(windows) - len(keep))] if len(keep) < len(windows) else []
    if not segments and not windows:
        dropped.append(("no_hands", 1))
    return keep, dropped
