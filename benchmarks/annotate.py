"""Per-video annotator speed on a real video (default: the 4 s 1080p egocentric sample).

Per video: the annotate step (annotate_video + the Parquet write of its rows) broken down
by step (VideoResult.seconds_by_step: open, track with the presence pass and the time the
tracker waited for frames, lift, clean with IK, captions, rows; plus write and decode
alone), its frames/s on the 15 fps timeline, and the ratio to MediaPipe alone (VIDEO mode)
on the same frames already decoded. Default videos: the 4 s sample and a 20 s 720p video made
from it (benchmarks/make_long_video.py). Prints a Markdown table with the CPU model, its bf16
support and the load average. Run it alone.

    python benchmarks/annotate.py                       # sample + 20 s 720p, 3 runs
    python benchmarks/annotate.py VIDEO --runs 1 --reader pyav
    python benchmarks/annotate.py --contention          # the tracker beside a decoder / a compute loop
    python benchmarks/annotate.py --build --runs 3      # the same ratio measured in real `clutch build`s

--build: each run is a fresh `clutch build VIDEO --out NEW --no-progress` process (its own
temporary Prefect server, cold imports, the trackers loaded while the server starts: what a user
runs); the annotate step is the time from the `plan` task's "Finished" log line to the
`annotate-*` task's, from the flow log's own timestamps. MediaPipe alone runs in this process
between the builds, as above. The harness above warms the process first (one annotate before
the clock); a real build does not, which is what this mode measures.

Numbers depend on the machine and its load; report both with the figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"


def tracker_alone(video_path: str, cfg) -> tuple[float, int]:
    """(seconds, frames) of MediaPipe alone in VIDEO mode on the annotate step's own frames,
    decoded beforehand (the 15 fps timeline at the decode size)."""
    import numpy as np

    from annotators.pipeline import decode
    from annotators.tracking import load_tracker
    from clutch_core import video as v
    from layout import FPS

    dec = decode(video_path, cfg)
    frames = np.concatenate([f for _, f in v.iter_resampled(dec.reader, dec.src_index, 15)])
    tr = load_tracker(cfg.tracker_repo, cfg.tracker, cfg.tracker_source, **cfg.tracker_kwargs)
    tr.track(frames[:1], FPS)  # the landmarker is created outside the clock
    tr.reset()
    t = time.perf_counter()
    tr.track(frames, FPS)
    return time.perf_counter() - t, len(frames)


def decode_alone(video_path: str, cfg) -> float:
    from annotators.pipeline import decode
    from clutch_core import video as v

    t = time.perf_counter()
    dec = decode(video_path, cfg)
    for _ in v.iter_resampled(dec.reader, dec.src_index, 15):
        pass
    return time.perf_counter() - t


def _busy(kind: str, video_path: str, seconds: float) -> None:
    """A competing single-threaded load, run as its own process: `decode` decodes the video in a loop
    (PyAV, one thread), `compute` multiplies small matrices that fit in a core's cache."""
    import numpy as np

    end = time.time() + seconds
    a = np.random.default_rng(0).random((300, 300), dtype=np.float32)
    while time.time() < end:
        if kind == "decode":
            import av

            with av.open(video_path) as c:
                s = c.streams.video[0]
                s.thread_count = 1
                for _ in c.decode(s):
                    pass
        else:
            for _ in range(100):
                a @ a


def contention(video_path: str, cfg, runs: int) -> None:
    """MediaPipe alone on the video's frames, quiet and beside a competing process on the other core:
    what a decoder costs the tracker beyond taking a core."""
    import multiprocessing as mp
    import statistics

    import numpy as np

    from annotators.pipeline import decode
    from annotators.tracking import load_tracker
    from clutch_core import video as v
    from layout import FPS

    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    dec = decode(video_path, cfg)
    frames = np.concatenate([f for _, f in v.iter_resampled(dec.reader, dec.src_index, 15)])
    tr = load_tracker(cfg.tracker_repo, cfg.tracker, cfg.tracker_source, **cfg.tracker_kwargs)
    tr.track(frames[:1], FPS)
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        for kind in ("quiet", "decode", "compute"):
            p = None
            if kind != "quiet":
                p = mp.get_context("spawn").Process(target=_busy, args=(kind, video_path, 60.0), daemon=True)
                p.start()
                time.sleep(1.5)  # started and busy
            tr.reset()
            t = time.perf_counter()
            tr.track(frames, FPS)
            times.setdefault(kind, []).append(time.perf_counter() - t)
            if p is not None:
                p.kill()
                p.join()
    quiet = statistics.median(times["quiet"])
    print(f"\n{Path(video_path).name}: MediaPipe alone on {len(frames)} frames, median of {runs}\n")
    print("| beside | seconds | vs quiet |\n|---|---|---|")
    for kind, label in (("quiet", "nothing"), ("decode", "a PyAV decode loop of the same video (1 thread)"),
                        ("compute", "a matrix-multiply loop (1 thread, in cache)")):
        s = statistics.median(times[kind])
        print(f"| {label} | {s:.2f} | {s / quiet:.2f}x |")


def build_annotate_seconds(video_path: str, reader: str) -> float:
    """One fresh `clutch build` of the video: seconds from `plan` finished to `annotate-*` finished
    in its flow log."""
    import re
    import subprocess
    import tempfile
    from datetime import datetime

    clutch = str(Path(sys.executable).with_name("clutch"))
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([clutch, "build", video_path, "--out", str(Path(d) / "ds"), "--no-progress",
                            "--set", f"reader={reader}"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"clutch build failed ({r.returncode}): {r.stderr[-2000:]}")

    def finished(task: str) -> datetime:
        m = re.search(rf"^(\d\d:\d\d:\d\d\.\d+) \| INFO +\| Task run '{task}-[^']*' - Finished", r.stdout + r.stderr,
                      re.M)
        if m is None:
            raise RuntimeError(f"no '{task}' Finished line in the build's log")
        return datetime.strptime(m.group(1), "%H:%M:%S.%f")

    return (finished("annotate") - finished("plan")).total_seconds()


def real_build(video_path: str, cfg, runs: int) -> None:
    """The annotate step of real `clutch build`s against MediaPipe alone on the same frames, alternating."""
    import statistics

    steps, alone = [], []
    for _ in range(runs):
        steps.append(build_annotate_seconds(video_path, cfg.reader))
        alone.append(tracker_alone(video_path, cfg))
    frames = alone[0][1]
    step, mp = statistics.median(steps), statistics.median(s for s, _ in alone)
    from benchmarks.shift import cpu_facts

    f = cpu_facts()
    print(f"\nCPU: {f['cpu']}; load average (1 min): {f['load_avg_1min']:.2f}; median of {runs} builds\n")
    print("| video | frames (15 fps) | `clutch build`: plan -> annotate finished | frames/s | MediaPipe alone frames/s "
          "| ratio |\n|---|---|---|---|---|---|")
    print(f"| {Path(video_path).name} | {frames} | {step:.2f} s ({', '.join(f'{s:.2f}' for s in steps)}) | "
          f"{frames / step:.1f} | {frames / mp:.1f} | {mp / step:.2f} |")


def write_seconds(rows) -> float:
    import tempfile

    from storage.writer import write_shard

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        if rows:
            write_shard(d, "bench", rows)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", help="default: the sample and a ~17 s 720p video made from it")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reader", default="auto", choices=["auto", "decord", "pyav"])
    ap.add_argument("--long-seconds", type=float, default=20.2)
    ap.add_argument("--contention", action="store_true",
                    help="only measure MediaPipe alone beside a competing decode or compute process")
    ap.add_argument("--build", action="store_true",
                    help="measure the annotate step in real `clutch build` runs (flow log timestamps)")
    args = ap.parse_args()
    import statistics
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from annotators.discovery import video_id
    from annotators.pipeline import AnnotateConfig, annotate_video
    from benchmarks.make_long_video import make_long_video
    from benchmarks.shift import cpu_facts

    videos = list(args.videos)
    tmp = tempfile.TemporaryDirectory()
    if not videos:
        long = make_long_video(SAMPLE, Path(tmp.name) / "ego_kitchen_long_720p.mp4", args.long_seconds, (1280, 720))
        videos = [str(SAMPLE), str(long)]
    cfg = AnnotateConfig(reader=args.reader)
    if args.contention:
        for path in videos:
            contention(path, cfg, args.runs)
        return
    if args.build:
        for path in videos:
            real_build(path, cfg, args.runs)
        return
    table = []
    for path in videos:
        vid = video_id(path)
        annotate_video(path, vid, cfg)  # warm: imports, landmarkers
        tracker_alone(path, cfg)
        runs, alone, decs = [], [], []
        for _ in range(args.runs):  # alternating, so drifts of the machine hit both alike
            r = annotate_video(path, vid, cfg)
            runs.append((r, r.seconds_by_step, write_seconds(r.rows)))
            alone.append(tracker_alone(path, cfg))
            decs.append(decode_alone(path, cfg))
        r = runs[0][0]
        steps = {k: statistics.median(st.get(k, 0.0) for _, st, _ in runs)
                 for k in ("open", "track", "wait", "presence", "lift", "clean", "fit", "caption", "rows")}
        annotate_s = statistics.median(x.seconds + w for x, _, w in runs)  # the step: annotate + write
        mp_fps = statistics.median(n / s for s, n in alone)
        fps = r.num_frames / annotate_s
        table.append((Path(path).name, r, statistics.median(decs), steps, statistics.median(w for *_, w in runs),
                      annotate_s, fps, mp_fps))
    f = cpu_facts()
    print(f"\nCPU: {f['cpu']}; native bf16: {f['native_bf16']}; load average (1 min): {f['load_avg_1min']:.2f}; "
          f"median of {args.runs} runs; reader {args.reader}\n")
    print("| video | frames (15 fps) | decode alone | open | track (all) | of which waiting for frames | presence "
          "| lift | clean | of which the fit | captions | rows | write | annotate step | frames/s | MediaPipe alone "
          "frames/s | ratio |")
    print("|" + "---|" * 17)
    for name, r, dec_s, st, w, total, fps, mp_fps in table:
        print(f"| {name} ({r.reader}) | {r.num_frames} | {dec_s:.2f} | {st['open']:.2f} | {st['track']:.2f} | "
              f"{st['wait']:.2f} | {st['presence']:.2f} | {st['lift']:.3f} | {st['clean']:.3f} | {st['fit']:.3f} | "
              f"{st['caption']:.3f} | {st['rows']:.3f} | {w:.3f} | {total:.2f} | {fps:.1f} | {mp_fps:.1f} | "
              f"{fps / mp_fps:.2f} |")
    print("\nSeconds; decode runs in its own thread during `track`, so it is not added to the step.")
    tmp.cleanup()


if __name__ == "__main__":
    main()
