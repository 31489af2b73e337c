"""Small generators of bad (and awkward) video files, shared by the annotator and flow tests.

`make_bad_inputs(folder)` writes one file per case and returns {case: path}; EXPECTED says
what annotate_video must do with each: 'bad' = raise BadVideoError, 'no_clips' = return
zero rows with a dropped reason, 'ok' = decode normally (the file has no hands, so no clips).
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

EXPECTED = {
    "empty": "bad",
    "truncated": "bad",
    "truncated_faststart": "bad",
    "text": "bad",
    "image": "bad",
    "random_bytes": "bad",
    "unknown_codec": "bad",
    "tiny": "bad",
    "huge": "bad",
    "no_hands": "no_clips",
    "vfr": "no_clips",
}


def write_video(path: Path, width: int, height: int, times_s: list[float], codec: str = "libx264",
                seed: int = 0) -> Path:
    """Encode a hand-free video (smooth colour gradient + drifting blocks) with the given frame times."""
    import av

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_s):
            img = np.stack([(xx + 7 * i) % 256, (yy + 3 * i) % 256, np.full_like(xx, (40 * t) % 256)], -1)
            y0, x0 = rng.integers(0, max(1, height - 8)), rng.integers(0, max(1, width - 8))
            img[y0:y0 + 8, x0:x0 + 8] = 255
            f = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            f.pts = int(round(t * 1000))
            f.time_base = Fraction(1, 1000)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def _faststart(src: Path, dst: Path) -> Path:
    """Remux with the index (moov) before the data, as streaming-ready MP4s are."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for pkt in i.demux(i.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = s
                o.mux(pkt)
    return dst


def make_bad_inputs(folder: str | Path) -> dict[str, Path]:
    """Write every case of EXPECTED into folder (all with a video extension) -> {case: path}."""
    from PIL import Image

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    out["empty"] = d / "empty.mp4"
    out["empty"].write_bytes(b"")
    good = write_video(d / "_good.mp4", 128, 96, [i / 30 for i in range(45)])
    data = good.read_bytes()
    out["truncated"] = d / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 3])
    fast = _faststart(good, d / "_faststart.mp4")  # index first: the file opens, then its data ends
    out["truncated_faststart"] = d / "truncated_faststart.mp4"
    out["truncated_faststart"].write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    fast.unlink()
    out["unknown_codec"] = d / "unknown_codec.mp4"
    out["unknown_codec"].write_bytes(data.replace(b"avc1", b"zzz9"))
    good.unlink()
    out["text"] = d / "notes.mp4"
    out["text"].write_text("this is a text file, not a video\n" * 20)
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(buf, format="JPEG")
    out["image"] = d / "photo.mp4"
    out["image"].write_bytes(buf.getvalue())
    out["random_bytes"] = d / "random.mkv"
    out["random_bytes"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out["tiny"] = write_video(d / "tiny.mp4", 16, 16, [i / 30 for i in range(10)])
    out["huge"] = write_video(d / "huge.mp4", 8320, 64, [0.0, 1 / 30])
    out["no_hands"] = write_video(d / "no_hands.mp4", 160, 120, [i / 30 for i in range(60)])
    # variable frame rate: 1 s at 10 fps, then 1 s at 30 fps
    times = [i / 10 for i in range(10)] + [1 + i / 30 for i in range(30)]
    out["vfr"] = write_video(d / "vfr.mp4", 160, 120, times)
    return out
