"""YUV -> RGB at the decode size: cost per frame and error against a float reference.

The reference: the exact limited-range matrix of the source (BT.601 for untagged video, as FFmpeg
reads it) on full-resolution Y'CbCr with bilinear chroma, in float, then an area downscale to the
decode size. Rows: `video.to_rgb` with `exact` (the default) and `swscale` (FFmpeg's own RGB
output), both on one thread, and swscale's RGB output with its default threads (every core), as
the reader did before. Run it alone.

    python benchmarks/colour.py                 # the 4 s 1080p sample, every 4th frame
    python benchmarks/colour.py VIDEO --every 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"


def reference(frame, size, kr_kb):
    """float32 [h, w, 3]: exact matrix on full-resolution planes, bilinear chroma, area downscale."""
    import cv2
    import numpy as np

    h, w = frame.height, frame.width
    a = frame.to_ndarray(format="yuv420p").astype(np.float32)
    y, u, v = a[:h], a[h:h + h // 4].reshape(h // 2, w // 2), a[h + h // 4:].reshape(h // 2, w // 2)
    u, v = (cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in (u, v))
    kr, kb = kr_kb
    kg, ys, cs = 1 - kr - kb, 255 / 219, 255 / 224
    yl, cb, cr = (y - 16) * ys, (u - 128) * cs, (v - 128) * cs
    rgb = np.stack([yl + 2 * (1 - kr) * cr, yl - 2 * (1 - kb) * kb / kg * cb - 2 * (1 - kr) * kr / kg * cr,
                    yl + 2 * (1 - kb) * cb], -1)
    return cv2.resize(np.clip(rgb, 0, 255), size, interpolation=cv2.INTER_AREA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(SAMPLE))
    ap.add_argument("--every", type=int, default=4, help="use every n-th frame")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import statistics

    import av
    import numpy as np

    from clutch_core import video

    info = video.probe(args.video)
    w, h = video.decode_size(info.width, info.height)
    with av.open(args.video) as c:
        frames = [f for i, f in enumerate(c.decode(video=0)) if i % args.every == 0]
    f0 = frames[0]
    kr_kb = video._KR_KB.get(int(f0.colorspace))
    if kr_kb is None or f0.format.name != "yuv420p" or int(f0.color_range) == 2:
        sys.exit(f"{args.video}: {f0.format.name}, colorspace {int(f0.colorspace)}, range {int(f0.color_range)}: "
                 "the exact path does not apply (swscale converts it)")
    refs = [reference(f, (w, h), kr_kb) for f in frames]
    rows = {
        "exact (`video.to_rgb`, default), 1 thread": lambda f: video.to_rgb(f, w, h, "exact"),
        "swscale RGB output, 1 thread": lambda f: video.to_rgb(f, w, h, "swscale"),
        "swscale RGB output, default threads (before)": lambda f: f.to_ndarray(width=w, height=h, format="rgb24"),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    errs = {}
    for _ in range(args.repeats):  # alternating
        for name, fn in rows.items():
            t = time.process_time()
            outs = [fn(f) for f in frames]
            times[name].append((time.process_time() - t) / len(frames) * 1e3)
            errs[name] = np.stack([o.astype(np.float32) - r for o, r in zip(outs, refs)])
    print(f"\n{Path(args.video).name}: {info.width}x{info.height} -> {w}x{h}, {len(frames)} frames, "
          f"matrix Kr={kr_kb[0]}, Kb={kr_kb[1]}; CPU ms per frame, median of {args.repeats}\n")
    print("| conversion | CPU ms / frame | mean abs error (levels) | mean error R, G, B | p99 abs error |")
    print("|---|---|---|---|---|")
    for name in rows:
        e = errs[name]
        bias = ", ".join(f"{x:+.2f}" for x in e.mean((0, 1, 2)))
        print(f"| {name} | {statistics.median(times[name]):.2f} | {np.abs(e).mean():.2f} | {bias} | "
              f"{np.percentile(np.abs(e), 99):.1f} |")


if __name__ == "__main__":
    main()
