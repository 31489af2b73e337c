"""Per-video annotator speed on a real video (default: the 4 s 1080p egocentric sample).

Reports, per run, wall seconds of annotate_video (imports and model loading excluded
after the first run), frames decoded and tracked, clips, and the stage split for the
last video: decode + resample alone. With several videos, each run annotates them one
after the other in one thread (as a build batch does, reusing the trackers) and reports
the batch total and the time spent creating landmarkers.

    python benchmarks/annotate.py                       # sample video, 3 runs
    python benchmarks/annotate.py VIDEO --runs 1 --reader pyav
    python benchmarks/annotate.py A.mp4 B.mp4 C.mp4 D.mp4 --runs 3

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
    ap.add_argument("videos", nargs="*", default=[str(SAMPLE)])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reader", default="decord", choices=["decord", "pyav"])
    args = ap.parse_args()

    t0 = time.perf_counter()
    from clutch_core import video as clipping
    from annotators.discovery import video_id
    from annotators.pipeline import AnnotateConfig, annotate_video

    print(f"imports: {time.perf_counter() - t0:.1f} s; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    cfg = AnnotateConfig(reader=args.reader)
    created = _count_landmarker_creation()
    ids = [video_id(v) for v in args.videos]
    for i in range(args.runs):
        t_batch, created[:] = time.perf_counter(), [0, 0.0]
        for path, vid in zip(args.videos, ids):
            t = time.perf_counter()
            r = annotate_video(path, vid, cfg)
            wall = time.perf_counter() - t
            hands = sum(int(row["presence"].any(1).sum()) for row in r.rows)
            print(f"run {i} {Path(path).name}: {wall:.2f} s  reader={r.reader} size={r.image_size} "
                  f"timeline={r.num_frames} decoded={r.frames_decoded} tracked={r.frames_tracked} "
                  f"clips={len(r.rows)} frames_with_hands={hands} dropped={r.dropped}")
        if len(args.videos) > 1:
            print(f"run {i} batch of {len(args.videos)}: {time.perf_counter() - t_batch:.2f} s, "
                  f"{created[0]} landmarker(s) created in {created[1]:.2f} s")
    video = args.videos[-1]
    info = clipping.probe(video)
    size = clipping.decode_size(info.width, info.height, cfg.decode_short_side, cfg.decode_max_long_side)
    t = time.perf_counter()
    rd = clipping.open_reader(info, size, args.reader)
    idx = clipping.resample_indices(rd.timestamps)
    n = sum(len(f) for _, f in clipping.iter_resampled(rd, idx, 15))
    print(f"decode+resample only: {time.perf_counter() - t:.2f} s for {n} frames at {size[0]}x{size[1]}")


def _count_landmarker_creation() -> list:
    """[count, seconds] of MediaPipe landmarker creations from now on."""
    from mediapipe.tasks.python import vision

    stats = [0, 0.0]
    create = vision.HandLandmarker.create_from_options

    def timed(opts):
        t = time.perf_counter()
        try:
            return create(opts)
        finally:
            stats[0] += 1
            stats[1] += time.perf_counter() - t

    vision.HandLandmarker.create_from_options = timed
    return stats


if __name__ == "__main__":
    main()
