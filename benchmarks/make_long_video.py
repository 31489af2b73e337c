"""A longer real two-hand video made from the repository's sample, deterministically.

The only real footage here is `ego_kitchen_4s.mp4` (4 s, 1080p, 30 fps, egocentric, two hands).
This script cuts it into segments played one after the other, so that no two neighbours are the
same footage and the motion does not simply repeat:

    1. forward              the whole frame
    2. reversed             continues where 1 ends (time runs backwards: the same hands, new motion)
    3. mirrored, forward    left and right swap in the image (a cut)
    4. mirrored, reversed
    5. zoomed, forward      a 1.3x crop around the lower middle of the frame (hands look closer; a cut)

and then again from 1 until `seconds` is reached. `--recipe looped` is the video of the earlier
speed figures in BENCHMARKS.md (forward, then mirrored, in turn). Each frame is scaled to `size` (area
interpolation) and the result encoded as H.264 (libx264, yuv420p, CRF 20, one encoder thread,
so the same command writes the same bytes). Default: 1280x720, 30 fps, 20.2 s (the five segments
once). The video's source is the sample video and its licence is the sample's; never commit the
output (write it under /tmp).

    python benchmarks/make_long_video.py /tmp/ego_kitchen_long_720p.mp4 [--seconds 20.2] [--size 1280x720]
    python benchmarks/make_long_video.py /tmp/ego_kitchen_looped_720p.mp4 --recipe looped --seconds 17
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"
RECIPES = {"segments": ("forward", "reversed", "mirrored", "mirrored-reversed", "zoomed"),
           "looped": ("forward", "mirrored")}
ZOOM = 1.3  # the zoomed segment shows the middle 1/1.3 of the width ...
ZOOM_CENTRE = (0.5, 0.6)  # ... centred here (fractions of width, height): where the hands work


def _frames(src: Path, size: tuple[int, int], zoom: bool) -> list[np.ndarray]:
    """All frames of `src` as RGB uint8 at `size`; `zoom` crops around ZOOM_CENTRE first."""
    import av
    import cv2

    out = []
    with av.open(str(src)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            if zoom:
                h, w = img.shape[:2]
                cw, ch = int(round(w / ZOOM)), int(round(h / ZOOM))
                x0 = int(np.clip(round(ZOOM_CENTRE[0] * w - cw / 2), 0, w - cw))
                y0 = int(np.clip(round(ZOOM_CENTRE[1] * h - ch / 2), 0, h - ch))
                img = img[y0:y0 + ch, x0:x0 + cw]
            out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    return out


def segment_frames(src: Path, size: tuple[int, int], recipe: str = "segments") -> Iterator[np.ndarray]:
    """The segments of a recipe (module docstring), in order, forever (the caller stops)."""
    plain = _frames(src, size, zoom=False)
    zoomed = _frames(src, size, zoom=True) if "zoomed" in RECIPES[recipe] else []
    mirrored = [np.ascontiguousarray(f[:, ::-1]) for f in plain]
    by_name = {"forward": plain, "reversed": plain[::-1], "mirrored": mirrored,
               "mirrored-reversed": mirrored[::-1], "zoomed": zoomed}
    while True:
        for name in RECIPES[recipe]:
            yield from by_name[name]


def make_long_video(src: Path, dst: Path, seconds: float, size: tuple[int, int] = (1280, 720), fps: int = 30,
                    crf: int = 20, recipe: str = "segments") -> Path:
    """Write `seconds` of the segment sequence of `src` to `dst` (H.264, `size`, `fps`); returns `dst`."""
    import av

    n = int(round(seconds * fps))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"preset": "veryfast", "crf": str(crf), "threads": "1"}
        s.codec_context.thread_count = 1
        for k, frame in enumerate(segment_frames(src, size, recipe)):
            if k >= n:
                break
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the video to write (e.g. /tmp/ego_kitchen_long_720p.mp4)")
    ap.add_argument("--src", default=str(SAMPLE), help="source video (default: the repository's sample)")
    ap.add_argument("--seconds", type=float, default=20.2, help="length (default 20.2: each segment once)")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="segments")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    path = make_long_video(Path(args.src), Path(args.out), args.seconds, (w, h), args.fps, recipe=args.recipe)
    print(path)


if __name__ == "__main__":
    main()
