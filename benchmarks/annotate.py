"""Per-video annotator speed on a real video (default: the 4 s 1080p egocentric sample).

Reports, per run, wall seconds of annotate_video (imports and model loading excluded
after the first run), frames decoded and tracked, clips, and the stage split for the
last run: decode + resample alone, and the whole call.

    python benchmarks/annotate.py                       # sample video, 3 runs
    python benchmarks/annotate.py VIDEO --runs 1 --reader pyav

Numbers depend on the machine and its load; report both with the figures.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(SAMPLE))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reader", default="decord", choices=["decord", "pyav"])
    args = ap.parse_args()

    t0 = time.perf_counter()
    from annotators import clipping
    from annotators.discovery import video_id
    from annotators.pipeline import AnnotateConfig, annotate_video

    print(f"imports: {time.perf_counter() - t0:.1f} s; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    cfg = AnnotateConfig(reader=args.reader)
    vid = video_id(args.video)
    for i in range(args.runs):
        t = time.perf_counter()
        r = annotate_video(args.video, vid, cfg)
        wall = time.perf_counter() - t
        hands = sum(int(row["presence"].any(1).sum()) for row in r.rows)
        print(f"run {i}: {wall:.2f} s  reader={r.reader} size={r.image_size} timeline={r.num_frames} "
              f"decoded={r.frames_decoded} tracked={r.frames_tracked} clips={len(r.rows)} "
              f"frames_with_hands={hands} dropped={r.dropped}")
    info = clipping.probe(args.video)
    size = clipping.decode_size(info.width, info.height, cfg.decode_short_side, cfg.decode_max_long_side)
    t = time.perf_counter()
    rd = clipping.open_reader(info, size, args.reader)
    idx = clipping.resample_indices(rd.timestamps, cfg.fps)
    n = sum(len(f) for _, f in clipping.iter_resampled(rd, idx, 15))
    print(f"decode+resample only: {time.perf_counter() - t:.2f} s for {n} frames at {size[0]}x{size[1]}")


if __name__ == "__main__":
    main()
