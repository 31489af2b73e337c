"""build-3dhiw throughput per task runner, on the same 4 videos, and a projection for 3D-HIW.

Runs `clutch build` (a subprocess, as a user would, with its temporary Prefect server) on 4
variants of the sample video (tests/fixtures/flow_videos.py: re-encoded, flipped, trimmed; each is
its own content id), one video per batch, for: threads with 1 and 2 workers, Dask with 2
worker processes, Ray with 2 CPUs. Per runner:

- wall: the whole command on a fresh dataset folder;
- overhead: the same command again on the finished folder (nothing to annotate): the server,
  the flow and the runner's start-up (Dask/Ray start their cluster for every flow run);
- videos/hour and frames/s: on the work alone (wall - overhead), frames being the annotated
  frames on the 15 fps timeline (sum of num_frames of the shards).

Then a projection, labelled as such, for the whole 3D-HIW corpus on N machines like this one from
the best measured rate, and what the HaMeR-size GPU network's measured crops/s would change. Prints Markdown with
the CPU, core count and load average. Run it alone on a quiet machine: it is a timing.

    python benchmarks/scaling.py                       # all four runners
    python benchmarks/scaling.py --runners thread1,dask --corpus-hours 2000 --machines-list 8,64
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"
# name -> (task runner, workers)
RUNNERS = {"thread1": ("thread", 1), "thread2": ("thread", 2), "dask": ("dask", 2), "ray": ("ray", 2)}
# 3D-HIW (paper): about 32K sequences; a clip is at most 144 frames (9.6 s) at 15 fps.
CORPUS_SEQUENCES = 32_000


def build(videos: list[Path], out: Path, runner: str, workers: int, batch_size: int = 1) -> float:
    """Seconds of one `clutch build` command."""
    cmd = [str(Path(sys.executable).with_name("clutch")), "build", *map(str, videos), "--out", str(out),
           "--task-runner", runner, "--workers", str(workers), "--batch-size", str(batch_size), "--no-progress"]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if r.returncode not in (0, 3):  # 3: some videos quarantined (a soak corpus has broken files on purpose)
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout.decode(errors='replace')[-3000:]}")
    return seconds


def frames(out: Path) -> int:
    from storage.catalog import connect

    return int(connect(out).execute("SELECT coalesce(sum(num_frames), 0) FROM clips").fetchone()[0])


def measure(name: str, videos: list[Path], work: Path, batch_size: int = 1, timeline_frames: int | None = None) -> dict:
    """One runner: a fresh build, then the same command on the finished folder. Frames: the clips' frames,
    or (a soak corpus) every good video's frames on the 15 fps timeline, which is what the tracker reads."""
    runner, workers = RUNNERS[name]
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    wall = build(videos, out, runner, workers, batch_size)
    overhead = build(videos, out, runner, workers, batch_size)  # finished: only the fixed costs remain
    busy = max(wall - overhead, 1e-9)
    n = timeline_frames if timeline_frames is not None else frames(out)
    shutil.rmtree(out, ignore_errors=True)
    return dict(name=name, runner=runner, workers=workers, wall=wall, overhead=overhead, busy=busy, frames=n,
                videos_per_hour=len(videos) / busy * 3600, frames_per_s=n / busy,
                videos_per_hour_wall=len(videos) / wall * 3600)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}; {os.cpu_count()} logical CPUs; load average before the runs {load}"


def soak_videos(corpus: Path, n: int) -> tuple[list[Path], int]:
    """The first n files of a soak corpus's manifest (benchmarks/soak.py corpus; held-back ones left out)
    and their good videos' frames on the 15 fps timeline (copies counted once: they are built once)."""
    import json

    entries = [e for e in json.loads((corpus / "manifest.json").read_text())["videos"] if not e.get("held")][:n]
    good = {e["video_id"]: e["timeline_frames"] for e in entries if e["kind"] in ("good", "copy")}
    return [corpus / e["file"] for e in entries], sum(good.values())


def table(rows: list[dict]) -> str:
    out = ["| runner | workers | wall s | overhead s | videos/hour | frames/s | videos/hour incl. overhead |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['runner']} | {r['workers']} | {r['wall']:.1f} | {r['overhead']:.1f} | "
                   f"{r['videos_per_hour']:.0f} | {r['frames_per_s']:.1f} | {r['videos_per_hour_wall']:.0f} |")
    return "\n".join(out)


def projection(rows: list[dict], hours: float, clip_seconds: float, machines_list: list[int],
               basis: str = "at this video's 320 px decode", gpu_crops_s: float | None = None) -> str:
    """Days to annotate the corpus on N machines like this one, from the measured rates (a projection, not a
    measurement): each machine at the best runner's measured rate, machines added linearly."""
    best = max(rows, key=lambda r: r["frames_per_s"])
    one = next((r for r in rows if r["workers"] == 1), None)
    video_frames = hours * 3600 * 15  # every hour of source video is decoded and tracked on the 15 fps timeline
    clip_frames = CORPUS_SEQUENCES * clip_seconds * 15
    eff = f"; 2 workers give {best['frames_per_s'] / one['frames_per_s']:.2f}x 1 worker here" if one and best is not one else ""
    lines = [
        "**Projection (not measured)** for the whole 3D-HIW corpus. Assumptions: "
        f"{hours:.0f} hours of source video, all of it tracked on the 15 fps timeline ({video_frames / 1e6:.1f} M "
        f"frames; a lower bound counting only the ~{CORPUS_SEQUENCES:,} kept sequences of ~{clip_seconds:.1f} s is "
        f"{clip_frames / 1e6:.2f} M frames); {best['frames_per_s']:.1f} frames/s per machine like this one (measured: "
        f"{best['runner']} runner, {best['workers']} workers, {basis}{eff}); N such machines add linearly (each "
        "builds its own share of the videos into its own dataset folder, or one Ray/Dask cluster whose store keeps "
        "up); runner overhead is paid once per flow run and left out.",
        "",
        "| machines N | days (all source hours) | hours (kept sequences only) |",
        "|---:|---:|---:|",
    ]
    for n in machines_list:
        rate = best["frames_per_s"] * n
        lines.append(f"| {n} | {video_frames / rate / 86400:.1f} | {clip_frames / rate / 3600:.1f} |")
    if gpu_crops_s:
        crops = 2 * video_frames  # at most two hands per frame
        lines += ["", f"With a GPU tracker (not measured end to end): the HaMeR-size network alone at "
                  f"{gpu_crops_s:,.0f} crops/s (BENCHMARKS.md, one H100, bf16) needs {crops / gpu_crops_s / 3600:.0f} "
                  f"GPU-hours for two crops per frame of all source hours ({2 * clip_frames / gpu_crops_s / 3600:.1f} "
                  f"for the kept sequences only), {gpu_crops_s / 2 / best['frames_per_s']:.1f}x the frames/s of one "
                  "machine like this one; decoding and hand detection stay on the CPU and must keep up."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=SAMPLE, help="source of the 4 variants (default: the sample)")
    ap.add_argument("--runners", default=",".join(RUNNERS), help=f"comma-separated, of {', '.join(RUNNERS)}")
    ap.add_argument("--corpus-hours", type=float, default=1000.0,
                    help="hours of source video behind 3D-HIW for the projection (default 1000)")
    ap.add_argument("--clip-seconds", type=float, default=5.8, help="mean kept sequence length (default 5.8 s)")
    ap.add_argument("--machines-list", default="1,8,32,128", help="N of the projection (machines like this one)")
    ap.add_argument("--gpu-crops-s", type=float, default=1183.0, help="the HaMeR-size network's measured crops/s "
                    "for the projection's GPU line (BENCHMARKS.md; 0: leave it out)")
    ap.add_argument("--corpus", type=Path, default=None, help="a soak corpus (benchmarks/soak.py corpus) instead "
                    "of the 4 variants: its first --videos files, --batch-size 4, frames on the 15 fps timeline")
    ap.add_argument("--videos", type=int, default=100, help="files of --corpus (default 100)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds over the runners, alternating; the table gives "
                    "each runner's best round and the spread")
    args = ap.parse_args()
    names = [n.strip() for n in args.runners.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        sys.exit(f"--runners: unknown {unknown}; known: {', '.join(RUNNERS)}")
    header = machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.corpus:
            videos, tl = soak_videos(args.corpus, args.videos)
            what, batch = f"{len(videos)} files of the soak corpus {args.corpus} ({tl} timeline frames)", 4
        else:
            sys.path.insert(0, str(REPO))
            from tests.fixtures.flow_videos import VARIANTS, make_videos

            videos, tl = list(make_videos(args.video, work / "videos", list(VARIANTS)).values()), None
            what, batch = f"{len(videos)} videos (variants of {args.video.name}), one video per batch", 1
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for k in range(args.rounds):
            for n in names:
                runs[n].append(measure(n, videos, work, batch, tl))
                print(f"round {k}: {n}: {runs[n][-1]['frames_per_s']:.1f} frames/s", file=sys.stderr, flush=True)
        rows = []
        for n in names:
            best = max(runs[n], key=lambda r: r["frames_per_s"])
            fps = [r["frames_per_s"] for r in runs[n]]
            rows.append({**best, "spread": (min(fps), max(fps))})
    print(f"build-3dhiw on {what}; {args.rounds} round(s), runners alternating.\n")
    if args.rounds > 1:
        print("frames/s per round: " + "; ".join(f"{n} " + ", ".join(f"{r['frames_per_s']:.1f}" for r in runs[n])
                                                 for n in names) + "\n")
    print(f"Machine: {header}.\n")
    print(table(rows))
    print("\nwall: the whole `clutch build`; overhead: the same command on the finished dataset (server, flow, "
          "runner start-up); videos/hour and frames/s on wall - overhead; frames on the 15 fps timeline.\n")
    print(projection(rows, args.corpus_hours, args.clip_seconds, [int(x) for x in args.machines_list.split(",")],
                     "on the soak corpus, default settings" if args.corpus else "at this video's 320 px decode",
                     args.gpu_crops_s or None))


if __name__ == "__main__":
    main()
