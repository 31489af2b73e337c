"""Read a video: header probe, readers at reduced resolution, resampling to the clip frame rate.

A leaf shared by the annotators (decode for tracking) and the renderer (source frames
of a clip). Readers: decord (default; it resizes inside the decoder) with PyAV as the
fallback when decord cannot open the file (the reason is logged). Both stream frames in
order, a few dozen at a time, so memory stays bounded whatever the length of the video.
Every file is first probed with PyAV (headers only): a file that is not a decodable
video raises BadVideoError before a decoder touches it.

Errors: only the decoders' own "this data cannot be decoded" errors (decord's
DECORDError; PyAV's FFmpegError except its OS-level, memory and network kinds) become
BadVideoError, the one error that means "bad input, never retry". Anything else
(MemoryError, OSError on a network mount, an interrupt) propagates unchanged: the build
treats it as transient and retries it.

Resampling uses each frame's presentation timestamp, not its index: output frame k shows
the source frame on screen at time t0 + k / fps, so variable-frame-rate video comes out
at a true 15 fps (frames are repeated or skipped as needed).
"""
from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from layout import FPS

log = logging.getLogger(__name__)


class BadVideoError(ValueError):
    """The file cannot become clips: unreadable, not a video, unsupported size or codec.

    The one error type that means "this input is bad, do not retry it": build-3dhiw quarantines a
    video that raises it and retries any other exception (assumed transient: out of memory, an I/O
    error, a killed worker, a full disk)."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


def is_bad_data(e: BaseException) -> bool:
    """True for a decoder's own error about the data (decord's DECORDError, PyAV's FFmpegError
    except the kinds that are also OSError/MemoryError/network errors, which may pass)."""
    try:
        from decord._ffi.base import DECORDError
    except ImportError:  # decord not installed: PyAV only
        DECORDError = ()  # noqa: N806
    import av

    if DECORDError and isinstance(e, DECORDError):
        return True
    transient = (OSError, MemoryError, av.error.HTTPServerError, av.error.ExitError)
    return isinstance(e, av.error.FFmpegError) and not isinstance(e, transient)


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
        if not is_bad_data(e):
            raise
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
    """decord.VideoReader resizing in the decoder. Frames are read in batches that grow from 2 to
    `batch`, so the first frames reach the tracker after a few decodes, not after `batch`."""

    name = "decord"

    def __init__(self, path: str, size: tuple[int, int], batch: int = 32, threads: int = 1):
        import decord

        # one decoder thread: the tracker has the other core (decord converts every frame it
        # decodes, wanted or not, so more threads only contend with the tracker on 2 cores)
        self._vr = decord.VideoReader(path, width=size[0], height=size[1], num_threads=threads)
        n = len(self._vr)
        if n == 0:
            raise decord._ffi.base.DECORDError("decord found no frames")
        self.timestamps = np.asarray(self._vr.get_frame_timestamp(np.arange(n)), np.float64)[:, 0]
        self.size, self._batch, self.path = size, batch, path

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        idx = list(indices)
        i, b = 0, min(2, self._batch)
        while i < len(idx):
            part = idx[i:i + b]
            i, b = i + len(part), min(2 * b, self._batch)
            try:
                frames = self._vr.get_batch(part).asnumpy()  # [b, h, w, 3]
            except Exception as e:
                if not is_bad_data(e):
                    raise
                raise BadVideoError(self.path, f"decode failed near frame {part[0]} (decord: {e})") from None
            if len(frames) != len(part):
                raise BadVideoError(self.path, f"truncated: frames {part[0]}..{part[-1]} cannot be decoded")
            yield from zip(part, frames)


class PyAVReader:
    """PyAV, one sequential decode; timestamps from a packet-only demux pass."""

    name = "pyav"

    def __init__(self, path: str, size: tuple[int, int], color: str = "exact"):
        import av

        if color not in COLOR_CONVERSIONS:
            raise ValueError(f"color conversion must be one of {COLOR_CONVERSIONS}, got {color!r}")
        self.path, self.size, self.color = path, size, color
        try:
            with av.open(path) as c:
                s = c.streams.video[0]
                tb = float(s.time_base)
                pts = sorted({p.pts for p in c.demux(s) if p.pts is not None and p.size > 0})
        except Exception as e:
            if not is_bad_data(e):
                raise
            raise BadVideoError(path, f"cannot demux video ({type(e).__name__}: {e})") from None
        if not pts:
            raise BadVideoError(path, "no decodable video packets")
        self._pts_index = {p: i for i, p in enumerate(pts)}
        self.timestamps = np.asarray(pts, np.float64) * tb

    def iter_frames(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Decode in order and convert only the wanted frames. H.264 packets of unwanted
        non-reference pictures (nal_ref_idc 0: no other picture predicts from them) are not
        decoded at all; the wanted frames come out bit-identical (tests/clutch_core/test_video_speed_paths.py).
        At 30 -> 15 fps with B-frames that skips most unwanted frames."""
        import av

        want = set(int(i) for i in indices)
        if not want:
            return
        last = max(want)
        w, h = self.size
        try:
            with av.open(self.path) as c:
                s = c.streams.video[0]
                # the tracker keeps one core busy: decode with the others (one on a 2-core machine,
                # where more decoder threads only contend with it)
                s.thread_type, s.thread_count = "AUTO", max(1, (os.cpu_count() or 2) - 1)
                nal_len = _avcc_nal_length(s.codec_context)
                for packet in c.demux(s):
                    if (nal_len and packet.size and packet.pts is not None
                            and self._pts_index.get(packet.pts) not in want and _h264_nonref(bytes(packet), nal_len)):
                        continue
                    for frame in packet.decode():
                        i = self._pts_index.get(frame.pts)
                        if i is None:
                            continue
                        if i in want:
                            yield i, to_rgb(frame, w, h, self.color)
                        if i >= last:
                            return
        except av.error.FFmpegError as e:
            if not is_bad_data(e):
                raise
            raise BadVideoError(self.path, f"decode failed (pyav: {e})") from None


COLOR_CONVERSIONS = ("exact", "swscale")

# limited-range Y'CbCr -> R'G'B' by the source's matrix tag (AVColorSpace): 1 BT.709; 5, 6 BT.601;
# 2 unspecified, which FFmpeg reads as BT.601
_KR_KB = {1: (0.2126, 0.0722), 2: (0.299, 0.114), 5: (0.299, 0.114), 6: (0.299, 0.114)}


def _ycbcr_to_rgb(kr: float, kb: float) -> np.ndarray:
    """float32 [3, 4] affine map of limited-range 8-bit Y'CbCr (Y 16-235, C 16-240) to R'G'B' 0-255."""
    kg, ys, cs = 1.0 - kr - kb, 255.0 / 219.0, 255.0 / 224.0
    a = np.array([[ys, 0.0, 2 * (1 - kr) * cs],
                  [ys, -2 * (1 - kb) * kb / kg * cs, -2 * (1 - kr) * kr / kg * cs],
                  [ys, 2 * (1 - kb) * cs, 0.0]])
    return np.hstack([a, -(a @ [16.0, 128.0, 128.0])[:, None]]).astype(np.float32)


_MATRICES = {k: _ycbcr_to_rgb(*v) for k, v in _KR_KB.items()}


def to_rgb(frame, w: int, h: int, color: str = "exact") -> np.ndarray:
    """RGB uint8 [h, w, 3] of a decoded PyAV frame, scaled to (w, h) on the calling thread only.

    exact: swscale scales in Y'CbCr (bilinear, chroma to full size), then the source's own matrix
    (BT.601 for BT.601 and untagged sources, as FFmpeg reads them; BT.709) is applied rounded to
    nearest. Against a float reference (exact matrix, bilinear chroma, area downscale) it is off by
    0.4 levels on average, where swscale's own RGB output is off by 1.6 and reads 1.3-1.9 levels dark;
    and it costs 2.6 CPU-ms a 1080p frame instead of 5.1 (6.1 on swscale's default threads;
    benchmarks/colour.py). Full-range, high-bit-depth and RGB sources go to swscale.
    swscale: FFmpeg's own RGB conversion.
    One thread: swscale's default spreads over every core, into the tracker's."""
    import cv2

    m = _MATRICES.get(int(frame.colorspace))
    if color != "exact" or m is None or frame.format.name != "yuv420p" or int(frame.color_range) == 2:
        return frame.to_ndarray(width=w, height=h, format="rgb24", threads=1)
    planes = frame.reformat(width=w, height=h, format="yuv444p", threads=1).to_ndarray()  # [3, h, w]
    return cv2.transform(np.ascontiguousarray(planes.transpose(1, 2, 0)), m)


def _avcc_nal_length(ctx) -> int:
    """Bytes of each NAL unit's length prefix for H.264 in MP4/MOV (avcC extradata), else 0."""
    ex = bytes(ctx.extradata or b"") if ctx is not None and ctx.name == "h264" else b""
    return (ex[4] & 3) + 1 if len(ex) > 4 and ex[0] == 1 else 0


def _h264_nonref(data: bytes, nal_len: int) -> bool:
    """True when every coded slice in a length-prefixed H.264 access unit has nal_ref_idc 0
    (a picture no other picture references, so skipping it changes no other frame)."""
    i, n, slices = 0, len(data), 0
    while i + nal_len < n:
        size = int.from_bytes(data[i:i + nal_len], "big")
        i += nal_len
        if size <= 0 or i + size > n:
            return False  # not what we expect: decode it
        head = data[i]
        if head & 0x1F in (1, 5):  # coded slice (non-IDR, IDR)
            if head & 0x60:
                return False
            slices += 1
        i += size
    return slices > 0


READERS = ("auto", "decord", "pyav")


def open_reader(info: VideoInfo, size: tuple[int, int], prefer: str = "auto", color: str = "exact") -> FrameReader:
    """A reader for `prefer`; the reader's `name` records which one reads.

    auto: PyAV for H.264 (it leaves unwanted non-reference frames undecoded, where decord decodes
    and converts every frame: on 30 fps 1080p that is most of a core, the core the tracker needs
    on a 2-core machine; BENCHMARKS.md "Annotators"), decord otherwise. decord: decord when it
    opens the file, else PyAV; a decord error about the data falls back with the reason logged.
    Other errors (memory, I/O) propagate. color: PyAV's RGB conversion (`to_rgb`); decord converts
    with its own swscale."""
    if prefer not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {prefer!r}")
    if prefer == "auto":
        prefer = "pyav" if info.codec == "h264" else "decord"
    if prefer == "decord":
        try:
            return DecordReader(info.path, size)
        except Exception as e:
            if not is_bad_data(e):
                raise
            log.info("%s: decord cannot read it (%s); using PyAV", info.path, str(e).strip().splitlines()[0])
    return PyAVReader(info.path, size, color)


def resample_indices(timestamps: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Source frame index shown at each output time t0 + k/fps ([K] int64, non-decreasing)."""
    ts = np.asarray(timestamps, np.float64)
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    last_dur = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0 / fps
    end = ts[-1] + max(last_dur, 0.0)
    k = int(math.floor((end - ts[0] + 2e-3) * fps))  # 2 ms: millisecond timestamps round
    t = ts[0] + np.arange(k) / fps
    return np.clip(np.searchsorted(ts, t + 1e-6, side="right") - 1, 0, len(ts) - 1).astype(np.int64)


def iter_resampled(reader: FrameReader, src_index: np.ndarray, chunk: int,
                   read_ahead: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first output frame, RGB uint8 [n<=chunk, h, w, 3]) over the resampled timeline.

    read_ahead > 0 decodes in a background thread that stays at most that many chunks ahead
    (a bounded queue), so memory stays at read_ahead + 2 chunks. The chunks are the same either way.
    """
    def chunks() -> Iterator[tuple[int, np.ndarray]]:
        frames = iter_timeline(reader, src_index)
        for k0 in range(0, len(src_index), chunk):
            yield k0, np.stack([f for _, f in itertools.islice(frames, chunk)])

    if read_ahead <= 0:
        yield from chunks()
        return
    yield from read_ahead_iter(chunks(), read_ahead)


def iter_timeline(reader: FrameReader, src_index: np.ndarray, read_ahead: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """(k, RGB uint8 [h, w, 3]) for every frame k of the resampled timeline, in order.

    read_ahead > 0 decodes in a background thread at most that many frames ahead of the consumer
    (the tracker), starting now: the first frames decode while the caller gets ready. The consumer
    gets each frame as soon as it is decoded, not a whole chunk, and never waits while the decoder
    keeps up. Memory: read_ahead + 2 frames."""
    if read_ahead > 0:
        return read_ahead_iter(_timeline(reader, src_index), read_ahead)
    return _timeline(reader, src_index)


def _timeline(reader: FrameReader, src_index: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    frames = reader.iter_frames(np.unique(src_index).tolist())
    have, frame = -1, None
    for k, i in enumerate(src_index.tolist()):
        while have < i:  # sorted unique indices: the frame shown at k is the next one or the last one
            got = next(frames, None)
            if got is None:  # the container lists frames its data no longer holds
                raise BadVideoError(reader.path, f"truncated or corrupt: frame {i} of "
                                                 f"{len(reader.timestamps)} cannot be decoded")
            have, frame = got
        yield k, frame


_DONE = object()


def read_ahead_iter(items: Iterator, depth: int) -> Iterator:
    """Run `items` in a daemon thread, started now, at most `depth` items ahead of the consumer.

    The producer's exception (e.g. BadVideoError) is raised in the consumer at the position it
    happened. A consumer that stops early (break, an error of its own) stops the producer too:
    it drains at most one pending put and the thread exits, so no decoder outlives its video.
    A consumer dropped before its first item stops it as well, when it is garbage collected.
    """
    import queue
    import threading
    import weakref

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((_DONE, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    def consume() -> Iterator:
        try:
            while True:
                x, err = q.get()
                if x is _DONE:
                    if err is not None:
                        raise err
                    return
                yield x
        finally:
            stop.set()
            t.join()

    t = threading.Thread(target=produce, name="clutch-decode", daemon=True)
    t.start()
    out = consume()
    weakref.finalize(out, stop.set)  # never iterated, never closed: its finally never runs
    return out
