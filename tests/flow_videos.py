"""Several different real videos from the one sample: re-encoded small, flipped, trimmed.

Each variant has other bytes (so another content id) and still shows real hands, so a
build over them exercises the real tracker. Small sizes keep the tests fast.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

WIDTH = 320  # the sample is decoded once at this width
# name -> (horizontal flip, first second, last second)
VARIANTS = {
    "kitchen_a": (False, 0.0, 4.0),
    "kitchen_b": (True, 0.0, 4.0),
    "kitchen_c": (False, 0.0, 3.0),
    "kitchen_d": (True, 1.0, 4.0),
}


def _decode(src: Path, width: int) -> tuple[list[np.ndarray], list[float], int]:
    import av

    with av.open(str(src)) as c:
        s = c.streams.video[0]
        height = int(round(width * s.height / s.width / 2)) * 2
        rate = int(round(float(s.average_rate or 30)))
        frames, times = [], []
        for f in c.decode(s):
            frames.append(f.reformat(width=width, height=height, format="rgb24").to_ndarray())
            times.append(float(f.pts * s.time_base))
    return frames, times, rate


def _encode(dst: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    tb = Fraction(1, fps)
    with av.open(str(dst), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.height, st.width = frames[0].shape[:2]
        st.pix_fmt = "yuv420p"
        st.codec_context.time_base = tb
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            f.pts, f.time_base = i, tb
            for pkt in st.encode(f):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def make_videos(src: Path, folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the chosen VARIANTS of `src` into folder as <name>.mp4; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    frames, times, fps = _decode(src, WIDTH)
    for name in names or list(VARIANTS):
        flip, a, b = VARIANTS[name]
        sel = [f[:, ::-1] if flip else f for f, t in zip(frames, times) if a - 1e-6 <= t < b - 1e-6]
        out[name] = folder / f"{name}.mp4"
        _encode(out[name], sel, fps)
    return out
